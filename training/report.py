"""report.html: the evaluation as a single self-contained page with PNG plots."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from training.evaluate import METRICS  # noqa: E402


def curves_png(metrics: dict[str, Any]) -> bytes:
    """precision@k and recall@k for k = 1..20: the served blend, its parts, popularity (and EASE)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    ks = metrics["curves"]["k"]
    for ax, name in zip(axes, ("precision", "recall"), strict=True):
        for model, style in (("served", "-D"), ("lightfm", "-o"), ("item_item", "-.v"), ("popularity", "--s"),
                             ("ease", ":^")):  # fmt: skip
            if model in metrics["curves"]:
                ax.plot(ks, metrics["curves"][model][name], style, markersize=3, label=model)
        ax.set_xlabel("k")
        ax.set_title(f"{name}@k ({metrics['split']['name']}, held-out likes)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render(metrics: dict[str, Any]) -> bytes:
    png = base64.b64encode(curves_png(metrics)).decode()
    models = metrics["models"]
    names = [m for m in LABELS if m in models]
    heads = "".join(f"<th>{LABELS[m]}</th>" for m in names)
    rows = "".join(
        f"<tr><th>{name}</th>"
        + "".join(f"<td>{models[m][name]:.4f}</td>" for m in names)
        + f"<td>{_ratio(models, name)}</td></tr>"
        for name in METRICS
    )
    folded = metrics.get("fold_in")
    fold_rows = (
        "".join(
            f"<tr><th>{name}</th>" + "".join(f"<td>{m[k]:.4f}</td>" for k in FOLD_IN_METRICS) + "</tr>"
            for name, m in folded["models"].items()
        )
        if folded
        else ""
    )
    split = metrics["split"]
    ease = metrics.get("ease", {})
    blend = metrics.get("served")
    served = (
        f"Served: {blend['shares']['lightfm']:g} × LightFM + {blend['shares']['item_item']:g} × item-item "
        f"({blend['item_item']['method']}, a = {blend['item_item'].get('a', 1):g}, "
        f"λ = {blend['item_item']['lambda']:g}, "
        f"a user's k-th newest like weighing {_decay(blend['item_item'].get('recency_decay'))}, "
        f"{blend['item_item']['weights']:,} weights), {blend['normalization']}; shares, a, λ and the decay chosen on "
        "validation. Visitors (folded in, their likes in the order given): "
        f"{blend['visitor_shares']['lightfm']:g} × LightFM + {blend['visitor_shares']['item_item']:g} × item-item, "
        "chosen on users left out of a fit."
        if blend
        else ""
    )
    baseline = (
        f"EASE (closed-form item-item, a yardstick, not served): λ = {ease['lambda']:g}, chosen on validation."
        if "lambda" in ease
        else f"EASE was not scored: {ease.get('skipped', 'not run')}."
    )
    gate = _gate(metrics.get("gate") or {})
    replayed = _replay(metrics.get("replay"))
    data = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in metrics["data"].items())
    params = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in metrics["params"].items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Training report {html.escape(metrics["version"])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>Training report</h1>
<p>Model version <code>{html.escape(metrics["version"])}</code>, split <b>{html.escape(split["name"])}</b>:
{html.escape(split["description"])} ({html.escape(split["chosen_by"])}). k = {metrics["k"]},
{split["evaluated_users"]} users evaluated. Masked in every ranking: {html.escape(split["seen_masked"])}.</p>
<p>{html.escape(served)}</p>
<p>{html.escape(baseline)}</p>
<table><thead><tr><th>metric</th>{heads}<th>served ÷ popularity</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Visitors the model never saw (fold-in)</h2>
<p>{folded["users"] if folded else 0} held-out users, left out of a separate fit; their training-side likes
are folded in ({html.escape(folded["method"]) if folded else "-"}) and their held-out likes scored, seen movies masked.
<i>trained_in</i> is the served model trained with them, on the same users and likes; the <i>_lightfm</i> rows are
LightFM alone.</p>
<table><thead><tr><th>model</th>{"".join(f"<th>{k}</th>" for k in FOLD_IN_METRICS)}</tr></thead>
<tbody>{fold_rows}</tbody></table>
{replayed}
{gate}
<h2>precision@k and recall@k</h2><img alt="precision and recall at k" src="data:image/png;base64,{png}">
<h2>Data</h2><ul>{data}</ul><h2>Parameters</h2><ul>{params}</ul>
</body></html>
"""
    return page.encode()


def _gate(gate: dict[str, Any]) -> str:
    """The quality gate's section (`training.gate`): its decision and why, and each validation figure
    of the clean run, the run with visitors and the floor. Empty before the gate has decided."""
    if "decision" not in gate:
        return ""
    columns = [("clean", "clean run"), ("with_visitors", "with visitors"), ("floor", "floor")]
    present = [(key, label) for key, label in columns if gate.get(key)]
    heads = "".join(f"<th>{label}</th>" for _, label in present)
    rows = "".join(
        f"<tr><th>{name}</th>" + "".join(f"<td>{_figure(gate[key].get(name))}</td>" for key, _ in present) + "</tr>"
        for name in ("served", "popularity", "fold_in")
    )
    return (f"<h2>Quality gate</h2><p>{html.escape(str(gate.get('why', '')))} (floor from "
            f"{html.escape(str(gate.get('floor_from', '-')))}; band {gate.get('band', 0):.0%}, "
            f"--max-drop {gate.get('max_drop', 0):.0%}). Validation ndcg@10:</p>"
            f"<table><thead><tr><th>figure</th>{heads}</tr></thead><tbody>{rows}</tbody></table>")  # fmt: skip


def _replay(replayed: dict[str, Any] | None) -> str:
    """The replay's section (`training.replay`): static against real time, HR@10 and NDCG@10."""
    if not replayed:
        return ""
    shown = [("frozen at training", replayed["static"]), ("each like served as it arrives", replayed["realtime"])]
    refold = replayed.get("refold")
    if refold:  # LightFM's side alone: the trained vector, and refolded with each like
        shown += [("LightFM alone, frozen", refold["lightfm_alone"]["static"]),
                  (f"LightFM alone, refolded with each like (weight {refold['weight']:g}, chosen on validation)",
                   refold["lightfm_alone"]["refolded"])]  # fmt: skip
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{m['hr@10']:.4f}</td><td>{m['ndcg@10']:.4f}</td></tr>"
        for label, m in shown
    )
    lift = f" Real time ÷ static, HR@10: {replayed['hr_lift']:.2f}×." if replayed.get("hr_lift") else ""
    return (f"<h2>Likes served as they happen (replay)</h2><p>{replayed['arrivals']:,} held-out likes of "
            f"{replayed['users']:,} users: {html.escape(replayed['description'])}.{lift}</p>"
            "<table><thead><tr><th>profile</th><th>HR@10</th><th>NDCG@10</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")  # fmt: skip


def _decay(decay: float | None) -> str:
    return "1 (order ignored)" if decay is None else f"exp(-k / {decay:g})"


def _figure(value: Any) -> str:
    return "–" if value is None else f"{float(value):.4f}"


FOLD_IN_METRICS = ("precision@10", "recall@10", "ndcg@10")
LABELS = {"served": "served blend", "lightfm": "LightFM", "item_item": "item-item (SLIST)",
          "item_item_unordered": "item-item, order ignored", "popularity": "popularity",
          "ease": "EASE (dense)"}  # fmt: skip


def _ratio(models: dict[str, Any], name: str) -> str:
    base = models["popularity"][name]
    top = models.get("served", models["lightfm"])
    return f"{top[name] / base:.2f}×" if base else "–"
