"""The training pipeline: data in, metrics and the model's files out, with plain arguments.

`training.cli` reads the command line, the ratings and the cache, calls `train_and_evaluate`, and
publishes what it returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import recsys
from recsys.parts import SCHEMA_VERSION
from training import ease, foldin, itemitem, replay, sequence
from training import model as lfm
from training import visitors as visitors_
from training.cleaning import Interactions
from training.evaluate import evaluate, popularity_scorer
from training.report import render
from training.split import auto_split, make_split, to_matrix

#: Validation users that choose the item-item model's λ and the blend's shares (a seeded sample).
TUNE_USERS = 2000


def train_and_evaluate(
    data: Interactions,
    movies: Any,
    params: lfm.TrainParams,
    eval_users: int = 20000,
    progress: bool = True,
    visitors: dict[str, Any] | None = None,
    seen_online: dict[str, Any] | None = None,
) -> dict[str, bytes]:
    """Choose epochs (and EASE's λ) on a validation split, evaluate on the test split, then retrain
    on everything: the files to publish, by name (each part's ``<name>.pkl``, ``metrics.json``,
    ``report.html``).

    `eval_users` caps how many users the test split evaluates (a seeded sample); `progress` shows
    progress bars. `visitors`: the site's visitors among the users (`training.visitors`), as
    ``{"first_user_id": ..., **Screened.report()}``; they train and are evaluated as users, and
    are left out of the users the model serves. `seen_online`: how the site's picks did, per model
    version (`training.online`), carried as they are in metrics.json and the model card.
    """
    started = time.perf_counter()
    created = lfm.utc_now()
    cat = lfm.catalogue(data.item_ids, movies)
    features = lfm.item_features(params.item_features, cat)
    shape = (data.user_ids.size, data.item_ids.size)
    liked = data.positives(params.min_rating)

    def matrix(rows: np.ndarray) -> Any:
        return to_matrix(data.users[rows], data.items[rows], shape)

    def sequences(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # these likes in each user's order
        chosen = np.zeros(data.users.size, dtype=bool)
        chosen[rows] = True
        ordered = oldest_first[chosen[oldest_first]]
        return data.users[ordered], data.items[ordered]

    def newest(rows: np.ndarray) -> Any:  # what a user's item-item side reads, as served (`itemitem.weighted`)
        return itemitem.newest_likes(*sequences(rows), shape)

    def transitions(rows: np.ndarray) -> itemitem.Grams:  # SᵀS and SᵀT of these likes' sequences
        return sequence.grams(*sequences(rows), shape[1], itemitem.transitions(shape[1]))

    # the site's visitors train and are never held out: the splits and evaluation are the dataset's
    published = _published_users(data, visitors)
    visitor = np.zeros(data.users.size, dtype=bool) if published is None else data.users >= published
    base_times = data.timestamps[~visitor]
    kind, chosen_by = auto_split(base_times) if params.split == "auto" else (params.split, "--split")
    split = _split(kind, np.arange(data.users.size), data, liked, visitor, params.test_fraction)
    # validation: the same protocol again, inside what the test split leaves for training
    period = np.flatnonzero(split.seen)
    val = _split(kind, period, data, liked, visitor, params.validation_fraction)
    # visitors never carry a held-out like into a scored fit (`visitors.leaked_rows`); one mask for
    # both splits, so that validation's training side stays inside the test split's
    held_out = split.test.copy()
    held_out[period[val.test]] = True
    leaked = visitors_.leaked_rows(data.users, data.items, visitor & liked, held_out, shape)
    if leaked.any():
        split = replace(split, train=split.train & ~leaked)
        val = replace(val, train=val.train & ~leaked[period])
        print(f"visitors: {int(leaked.sum()):,} likes of movies held out by users they copy are left out of the "
              "scored fits (the published model trains on them)")  # fmt: skip
    val_train, val_seen, val_test = matrix(period[val.train]), matrix(period[val.seen]), matrix(period[val.test])
    history: list[float] = []
    phases = Phases()
    if params.early_stopping:
        params = lfm.resolve_epochs(params, int(val_train.nnz))
        with phases("validation fit"):
            val_model, epochs, history = lfm.fit(
                params, val_train.tocoo(), features, params.epochs or 1, (val_seen, val_test), "validate", progress
            )
        print(f"early stopping: best smoothed validation ndcg@10 after {epochs} of at most {params.epochs} epochs")
    else:
        params = lfm.resolve_epochs(params, int(split.train.sum()))
        epochs = params.epochs or 1
        with phases("validation fit"):  # the blend's share is chosen against it
            val_model, _, _ = lfm.fit(params, val_train.tocoo(), features, epochs, desc="validate", progress=progress)
    with phases("item-item: validation"):
        # (a, λ) of the item-item model alone with its recency decay (together up to DENSE_MAX_ITEMS
        # movies, after them above), then LightFM's share of the blend, on validation users only
        tune = lfm.sample_users(val_test, params.seed, TUNE_USERS)
        oldest_first = sequence.chronological(data.users, data.timestamps, data.order)  # once, for every subset
        dense = shape[1] <= itemitem.DENSE_MAX_ITEMS
        lambdas = itemitem.LAMBDAS if dense else itemitem.LAMBDAS_LARGE
        shares_of_likes = itemitem.SHARES_OF_LIKES if dense else itemitem.SHARES_OF_LIKES_LARGE
        settings = [(a, lam) for a in shares_of_likes for lam in lambdas]
        gram = itemitem.gram(val_train, params.threads)  # grown below into the later splits' in place
        val_rows = period[val.train]
        ordered = any(a < 1.0 for a, _ in settings)
        candidates = itemitem.fit_settings(gram, transitions(val_rows) if ordered else None, settings, params.threads)
        val_newest = newest(val_rows)

        def val_likes(recency: np.ndarray) -> Any:
            return itemitem.weighted(val_newest, recency)

        together = itemitem.DECAYS if dense else (itemitem.DECAY,)  # the decays scored with every (a, λ)
        setting, _, setting_grid = itemitem.choose_setting(candidates, val_likes, together, val_seen, val_test, tune)
        decay, decay_grid = itemitem.choose_decay(
            candidates[setting], val_likes, itemitem.DECAYS if dense else itemitem.DECAYS_LARGE, val_seen, val_test,
            tune, known=setting_grid[itemitem.label(*setting)],
        )
        # the ablation, order ignored: no transitions (a = 1) and, where it was scored, every like weighing 1
        plain = itemitem.decay_label(None if None in together else itemitem.DECAY)
        unordered = max((key for key in candidates if key[0] == 1.0),
                        key=lambda k: setting_grid[itemitem.label(*k)][plain])  # fmt: skip
        a, ii_lambda = setting
        val_item_item = itemitem.scorer(itemitem.weighted(val_newest, sequence.recency(decay)), candidates[setting])
        val_lightfm = lfm.lightfm_scorer(val_model, features)
        share, share_grid, share_se = itemitem.choose_share(val_lightfm, val_item_item, val_seen, val_test, tune)
        val_replayed = candidates[setting]._replace(decay=decay), lfm.representations(val_model, features)
        del candidates, val_model
    with phases("popularity: validation"):  # the quality gate's yardstick
        val_popularity = evaluate(popularity_scorer(val_train), val_seen, val_test, users=tune)
    print(f"served blend: {share:g} LightFM + {1 - share:g} item-item (a {a:g}, λ {ii_lambda:g}, recency decay "
          f"{decay or 'none'}), chosen on validation")  # fmt: skip
    train_m, seen_m, test_m = matrix(split.train), matrix(split.seen), matrix(split.test)
    with phases("evaluation fit and scores"):
        model, _, _ = lfm.fit(params, train_m.tocoo(), features, epochs, desc="evaluate", progress=progress)
        trained = lfm.lightfm_scorer(model, features)  # also the fold-in's trained-in yardstick
        sample = lfm.sample_users(test_m, params.seed, eval_users)
        results = {
            "lightfm": evaluate(trained, seen_m, test_m, users=sample),
            "popularity": evaluate(popularity_scorer(train_m), seen_m, test_m, users=sample),
        }
    with phases("item-item: evaluation fit and scores"):
        # the training side holds the validation side's likes and more (`grow_gram`)
        in_val = np.zeros(split.train.shape, dtype=bool)
        in_val[period[val.train]] = True
        train_rows = np.flatnonzero(split.train)
        train_gram = itemitem.grow_gram(gram, val_train, matrix(split.train & ~in_val), params.threads)
        train_seq = transitions(train_rows) if a < 1.0 else None
        wanted = {setting, unordered} if dense else {setting}  # the ablation costs a fit: above, only if it is free
        fitted = itemitem.fit_settings(train_gram, train_seq, wanted, params.threads)
        item_item = fitted[setting]._replace(decay=decay)
        train_newest = newest(train_rows)
        train_recent = itemitem.weighted(train_newest, item_item.recency)
        item_item_scores = itemitem.scorer(train_recent, item_item)
        results["item_item"] = evaluate(item_item_scores, seen_m, test_m, users=sample)
        if unordered in fitted:  # the same model with order ignored: no transitions, every like weighing 1
            results["item_item_unordered"] = evaluate(
                itemitem.scorer(itemitem.weighted(train_newest, sequence.recency(None)), fitted[unordered]), seen_m,
                test_m, users=sample,
            )
        served = itemitem.blend_scorer(trained, item_item_scores, share)
        results["served"] = evaluate(served, seen_m, test_m, users=sample)
        del fitted
    baseline: dict[str, Any]
    reason = ease.skipped(shape[1], params.ease)
    if reason is not None:
        baseline = {"skipped": reason}
        print(f"note: EASE baseline not scored: {reason}")
    else:
        with phases("EASE"):
            val_sample = lfm.sample_users(val_test, params.seed, eval_users)
            lam, grid = ease.choose_lambda(val_train, val_seen, val_test, val_sample)
            weights = ease.weights(ease.gram(train_m), lam)
            results["ease"] = evaluate(ease.scorer(train_m, weights), seen_m, test_m, users=sample)
            baseline = {"lambda": lam, "validation_ndcg@10": grid}
            del weights
    with phases("fold-in fit and scores"):
        folded = foldin.evaluate_fold_in(
            params,
            features,
            epochs,
            train_m,
            seen_m,
            test_m,
            (trained, served),
            foldin.ItemItemSide(train_gram, train_seq, setting, decay, share, train_recent,
                                lambda users: sequences(train_rows[np.isin(data.users[train_rows], users)])),
            progress,
        )
    phases.seconds["fold-in item-item"] = folded.item_item_seconds  # within the phase above
    with phases("replay"):  # the served model with each held-out like served as it arrives, and without
        # The refold changes LightFM's side alone, so its weight is chosen on LightFM alone (a blend
        # that gives LightFM no share could not tell the weights apart), on the validation split's
        # own replay, with the served fold-in's λ; the test split reports LightFM alone and the blend.
        _, val_uf, val_ib, val_vf = val_replayed[1]
        val_map = lfm.fold_in_projection(val_vf, val_uf, val_train, folded.lam)
        val_grid = {
            f"{w:g}": replay.replay(val_lightfm, val_replayed[0], 1.0, val_newest, sequences(period[val.test]),
                                    val_seen, np.flatnonzero(np.diff(val_test.indptr) > 0), seed=params.seed,
                                    fold=replay.FoldIn(val_uf, val_vf, val_ib, val_map, val_train, w))["realtime"]
            for w in replay.FOLD_IN_WEIGHTS
        }  # fmt: skip
        refold_weight = max(replay.FOLD_IN_WEIGHTS, key=lambda w: (val_grid[f"{w:g}"]["ndcg@10"], -w))
        del val_replayed, val_map
        _, train_uf, train_ib, train_vf = lfm.representations(model, features)
        train_map = lfm.fold_in_projection(train_vf, train_uf, train_m, folded.lam)

        def replayed(lightfm_share: float, weight: float) -> dict[str, Any]:
            return replay.replay(trained, item_item, lightfm_share, train_newest, sequences(np.flatnonzero(split.test)),
                                 seen_m, np.flatnonzero(np.diff(test_m.indptr) > 0), seed=params.seed,
                                 fold=replay.FoldIn(train_uf, train_vf, train_ib, train_map, train_m, weight))

        alone = replayed(1.0, 0.0)
        replay_report = {
            **replayed(share, refold_weight),
            "refold": {
                "weight": refold_weight, "lambda": folded.lam, "chosen_on": "validation, LightFM alone",
                "validation": val_grid,
                # LightFM alone with the trained vector kept is its static replay: only the mask grows
                "lightfm_alone": {"static": alone["static"],
                                  "refolded": replayed(1.0, refold_weight)["realtime"] if refold_weight
                                  else alone["realtime"]},
            },
            "description": replay.DESCRIPTION,
        }  # fmt: skip
    print(f"replay: a known user's new likes refold their LightFM vector by {refold_weight:g}, chosen on validation")
    with phases("final fit"):
        final, _, _ = lfm.fit(params, matrix(liked).tocoo(), features, epochs, desc="final", progress=progress)
    with phases("item-item: final fit"):
        full_gram = itemitem.grow_gram(train_gram, train_m, matrix(liked & ~split.train), params.threads)
        del train_seq
        full_seq = transitions(np.flatnonzero(liked)) if a < 1.0 else None
        item_item = itemitem.fit_settings(full_gram, full_seq, [setting], params.threads)[setting]._replace(decay=decay)
        del gram, train_gram, full_gram, full_seq
    train_s = time.perf_counter() - started

    version = f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"  # sortable by time; unique per run
    chosen = replace(params, epochs=epochs, split=kind)
    split_info = {
        "name": split.name,
        "description": split.description,
        "chosen_by": chosen_by,
        "evaluated_users": results["lightfm"]["users"],
        "seen_masked": "every movie the user rated, at any rating, up to their last training-side like",
        **split.detail,
    }
    metrics: dict[str, Any] = {
        "version": version,
        "split": split_info,
        "k": 10,
        "models": {name: {k: v for k, v in r.items() if k != "curves"} for name, r in results.items()},
        "served": {
            "name": "served",
            "components": ["lightfm", "item_item"],
            "shares": {"lightfm": share, "item_item": round(1.0 - share, 6)},
            "visitor_shares": {"lightfm": folded.share, "item_item": round(1.0 - folded.share, 6)},
            "normalization": "each model's scores z-scored over all movies, per user, then mixed by the shares",
            "item_item": item_item.describe(),
            "chosen_on": "validation",
            "validation_ndcg@10": {"a_lambda": setting_grid, "recency_decay": decay_grid, "lightfm_share": share_grid},
            "order_ignored": {"a": unordered[0], "lambda": unordered[1], "recency_decay": None,
                              **({} if "item_item_unordered" in results else {"skipped": (
                                  f"{shape[1]:,} movies: above {itemitem.DENSE_MAX_ITEMS:,} the ablation costs a "
                                  "neighbourhood fit of its own")})},
            "transitions": itemitem.transitions(shape[1]).describe(),
            "validation": {"ndcg@10": share_grid[f"{share:g}"],
                           "users": int(np.count_nonzero(np.diff(val_test.indptr)) if tune is None else tune.size)},
        },
        # what the quality gate compares (`training.gate`): what visitors see, never on the reported users
        "gate": {
            "figures": {
                "served": share_grid[f"{share:g}"],
                "popularity": round(val_popularity["ndcg@10"], 6),
                "fold_in": folded.report["visitor_share_chosen_on"]["ndcg@10"].get(f"{folded.share:g}"),
            },
            "standard_errors": {
                "served": share_se,
                "popularity": round(val_popularity["ndcg@10_se"], 6),
                "fold_in": folded.report["visitor_share_chosen_on"]["ndcg@10_se"],
            },
            "leaked_likes_left_out_of_scored_fits": int(leaked.sum()),
        },
        "curves": {"k": list(range(1, 21)), **{name: r["curves"] for name, r in results.items()}},
        "ease": baseline,
        "fold_in": folded.report,
        "replay": replay_report,
        **({"online": seen_online} if seen_online is not None else {}),
        "data": {**data.summary, "fingerprint": data.fingerprint(), "train_positives": int(train_m.nnz),
                 "seen_ratings": int(seen_m.nnz), "test_positives": int(test_m.nnz),
                 "visitors": {k: v for k, v in (visitors or {"visitors": 0, "likes": 0}).items()
                              if k != "first_user_id"}},
        "params": {**lfm.params_dict(chosen), "max_epochs": params.epochs, "validation_history": history},
        "training_seconds": round(train_s, 2),
        "seconds_by_phase": phases.seconds,
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }  # fmt: skip
    with phases("artifact"):
        artifact = lfm.build_artifact(
            final, features, data, cat, provenance(metrics), item_item, share, fold_in_lambda=folded.lam,
            visitor_share=folded.share, published_users=published, refold_weight=refold_weight,
        )
    parts = artifact.to_parts()
    metrics["artifact_bytes"] = sum(len(blob) for blob in parts.values())
    metrics["part_bytes"] = {name: len(blob) for name, blob in parts.items()}
    return {
        **{f"{name}.pkl": blob for name, blob in parts.items()},
        "metrics.json": json.dumps(metrics, indent=2).encode(),
        "report.html": render(metrics),
    }


def _split(kind: str, rows: np.ndarray, data: Interactions, liked: np.ndarray, visitor: np.ndarray,
           fraction: float) -> Any:  # fmt: skip
    """`make_split` of the dataset's `rows`, with the visitors' rows among them on the training side
    (their likes train, and are seen) and never held out: masks over `rows`."""
    mine = ~visitor[rows]
    base = rows[mine]
    inner = make_split(kind, data.users[base], data.timestamps[base], data.order[base], liked[base], fraction)
    if mine.all():
        return inner

    def spread(mask: np.ndarray, others: np.ndarray) -> np.ndarray:
        out = others.copy()
        out[mine] = mask
        return out

    theirs = visitor[rows]
    return replace(inner, train=spread(inner.train, liked[rows] & theirs), seen=spread(inner.seen, theirs),
                   test=spread(inner.test, np.zeros(rows.size, dtype=bool)))  # fmt: skip


def _published_users(data: Interactions, visitors: dict[str, Any] | None) -> int | None:
    """How many users the model serves: the dataset's own, whose ids are below every visitor's."""
    if not visitors or visitors.get("first_user_id") is None:
        return None
    return int(np.searchsorted(data.user_ids, visitors["first_user_id"]))


class Phases:
    """Times named phases of a run; each is printed as it ends and kept in `seconds`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)
        print(f"{name}: {self.seconds[name]:.1f} s", flush=True)


def provenance(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the model carries about itself (served by ``GET /model``), from the run's metrics."""
    plain: dict[str, Any] = json.loads(json.dumps({  # JSON types only: the serving unpickler admits no numpy scalar
        "version": metrics["version"],
        "created_at": metrics["created_at"],
        "params": metrics["params"],
        "data": metrics["data"],
        "metrics": {key: metrics[key] for key in ("split", "k", "models", "served", "curves", "ease", "fold_in",
                                                  "replay", "online") if key in metrics},
        "libraries": lfm.library_versions(),
    }))  # fmt: skip
    return plain


def cache_folder(root: Path | None, data: Interactions, params: lfm.TrainParams, movies: Any) -> Path | None:
    """Where a model trained on exactly this data, metadata, settings and code is cached."""
    if root is None:
        return None
    # The artifact's schema, the code and the titles too: a model (its metrics, its titles) cached
    # by older code or from other metadata must not be served as if this run had made it.
    identity = (
        f"{data.fingerprint()}{replace(params, threads=0)!r}schema={SCHEMA_VERSION}"
        f"code={code_fingerprint()}movies={movies_fingerprint(movies)}"
    )
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return root / key


def code_fingerprint() -> str:
    """sha256 of the training job's and the serving package's source, which make what is cached."""
    h = hashlib.sha256()
    for folder in (Path(__file__).parent, Path(recsys.__file__).parent):
        for path in sorted(folder.glob("*.py")):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def movies_fingerprint(movies: Any) -> str:
    """sha256 of the movie metadata (ids, titles, years, genres), or "none"."""
    if movies is None:
        return "none"
    fields = (
        movies.ids.tolist(),
        list(movies.titles),
        np.asarray(movies.years).tolist(),
        [list(g) for g in movies.genres],
    )
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()
