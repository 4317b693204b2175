"""The quality gate: which of a retrain's models may replace the serving one, if any.

Every figure is a validation ndcg@10 of what visitors actually see, on users the reported test
figures never include (`metrics.gate.figures`, made by `training.pipeline`):

* ``served``: the served blend, on the validation split's users;
* ``popularity``: popularity on the same users (a new visitor's picks, ``GET /movies``);
* ``fold_in``: the served model folded in for users left out of a fit (a visitor's picks).

A retrain with visitors trains twice: ``clean`` on the dataset alone, and ``with_visitors``. Then:

1. **The visitors' band.** Each figure of the run with visitors must be within `band` of the clean
   run's, either way, or within `NOISE` standard errors of it where the figure rests on so few
   users that `band` is inside its noise (the fold-in's choosing users, a small dataset). Lower:
   the visitors made what people see worse. Higher: a few strangers' likes cannot honestly raise
   accuracy on the dataset's own held-out likes by that much, so they carried them in (a copy of
   users' histories). Either way the clean model is the candidate, and the answer says why.
2. **The floor.** The candidate's *clean* figures must each be at most `max_drop` (or, likewise,
   `NOISE` standard errors) below the floor: the clean figures of the serving model, which every
   model published by this gate carries
   (``metrics.gate.clean``). The floor never holds a figure that visitors made, so one poisoned
   publish cannot lock out the honest models after it. A model published before this gate carries
   none: its served figure is a floor only when it trained without visitors.
3. **Fail closed.** When the serving model's metrics cannot be read, nothing is published and the
   job fails (`GateError`): a gate that cannot see its floor does not open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FIGURES = ("served", "popularity", "fold_in")
#: How far, either way, the visitors may move a validation figure before the clean model is published.
BAND = 0.05
#: Standard errors of a figure (over its users) within which a move is taken for noise.
NOISE = 2.0


class GateError(RuntimeError):
    """The gate cannot decide (the serving model's metrics are unreadable); nothing is published."""


@dataclass(frozen=True)
class Decision:
    """`run`: the run to publish ("clean" or "with_visitors"), None to keep the serving model;
    `reason`: why, in a sentence; `report`: what metrics.json's ``gate`` section says."""

    run: str | None
    reason: str
    report: dict[str, Any]


def figures(metrics: dict[str, Any]) -> dict[str, float]:
    """A run's gate figures (those it has)."""
    found = (metrics.get("gate") or {}).get("figures") or {}
    return {name: float(found[name]) for name in FIGURES if found.get(name) is not None}


def noise(metrics: dict[str, Any]) -> dict[str, float]:
    """Each of a run's figures' `NOISE` standard errors, as a fraction of the figure."""
    gate = metrics.get("gate") or {}
    found, errors = gate.get("figures") or {}, gate.get("standard_errors") or {}
    return {name: NOISE * float(errors[name]) / float(found[name]) for name in FIGURES
            if errors.get(name) is not None and found.get(name)}  # fmt: skip


def floor_of(serving: dict[str, Any] | None) -> tuple[dict[str, float], str]:
    """The figures a new model must stay near, from the serving model's metrics, and where they
    came from. `serving` None: there is no serving model."""
    if serving is None:
        return {}, "no model is serving"
    clean = (serving.get("gate") or {}).get("clean")
    if clean:
        return {name: float(v) for name, v in clean.items() if v is not None}, f"{serving['version']}'s clean run"
    trained_with = int(((serving.get("data") or {}).get("visitors") or {}).get("visitors", 0))
    served = ((serving.get("served") or {}).get("validation") or {}).get("ndcg@10")
    if trained_with == 0 and served is not None:
        return {"served": float(served)}, f"{serving['version']} (published before this gate, without visitors)"
    return {}, (f"none: {serving['version']} was published before this gate with {trained_with} visitors, so its "
                "figures may be theirs")  # fmt: skip


def decide(clean: dict[str, Any], with_visitors: dict[str, Any] | None, serving: dict[str, Any] | None,
           max_drop: float, band: float = BAND) -> Decision:  # fmt: skip
    """Apply the rules of this module's docstring to the runs' metrics and the serving model's."""
    base, spread = figures(clean), noise(clean)
    floor, floor_from = floor_of(serving)
    report: dict[str, Any] = {"clean": base, "noise": {n: round(v, 4) for n, v in spread.items()}, "floor": floor,
                              "floor_from": floor_from, "max_drop": max_drop, "band": band}  # fmt: skip
    run, why = "clean", "no visitors' likes to train on"
    if with_visitors is not None:
        theirs = figures(with_visitors)
        report["with_visitors"] = theirs
        moved = {name: theirs[name] / base[name] - 1 for name in theirs if name in base and base[name] > 0}
        worse = {n: d for n, d in moved.items() if d < -max(band, spread.get(n, 0.0))}
        better = {n: d for n, d in moved.items() if d > max(band, spread.get(n, 0.0))}
        if worse:
            why = f"the visitors' likes lower {_moves(worse)}, more than the band of {band:.0%} and the noise"
        elif better:
            why = (f"the visitors' likes raise {_moves(better)} on the dataset's own held-out likes, more than the "
                   f"band of {band:.0%} and the noise: strangers' likes cannot honestly do that, so they carry "
                   "held-out likes")
        else:
            run, why = "with_visitors", f"the visitors' likes move every figure by at most {band:.0%}"
        report["visitors"] = {"included": run == "with_visitors", "why": why}
    short = {n: (base[n], floor[n]) for n in floor
             if n in base and base[n] < floor[n] * (1 - max(max_drop, spread.get(n, 0.0)))}  # fmt: skip
    if short:
        worst = ", ".join(f"{n} {new:.4f} is {1 - new / old:.1%} below {old:.4f}" for n, (new, old) in short.items())
        reason = (f"its clean validation ndcg@10: {worst} (the floor, from {floor_from}), "
                  f"more than --max-drop {max_drop:.1%}")
        return Decision(None, reason, {**report, "decision": "kept", "why": reason})
    reason = f"published the {run.replace('_', ' ')} model: {why}"
    # what the next run's floor will be: this run's clean figures, whichever run is published
    return Decision(run, reason, {**report, "decision": run, "why": reason})


def _moves(moved: dict[str, float]) -> str:
    return ", ".join(f"{name} by {abs(d):.1%}" for name, d in moved.items())
