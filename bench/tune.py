"""LightFM settings compared on the validation split only (never the test split).

``python -m bench.tune [--ratings data/ml-100k]`` fits each candidate on the validation split's
training side with early stopping, as the training job does, and prints the best smoothed
validation ndcg@10 of each, with its epoch count. The test split is never touched.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from training import model as lfm
from training.cleaning import clean
from training.datasets import read_ratings
from training.split import auto_split, make_split, to_matrix

CANDIDATES: dict[str, dict[str, object]] = {
    "default (64, lr 0.02, max_sampled 10)": {},
    "lr 0.01": {"learning_rate": 0.01},
    "lr 0.05": {"learning_rate": 0.05},
    "32 components": {"components": 32},
    "128 components": {"components": 128},
    "max_sampled 30": {"max_sampled": 30},
    "item_alpha 1e-6": {"item_alpha": 1e-6},
    "item_alpha 1e-5": {"item_alpha": 1e-5},
    "item features: genres": {"item_features": "genres"},
    "item features: genres+decade": {"item_features": "genres+decade"},
    "128 components, max_sampled 30": {"components": 128, "max_sampled": 30},
    "128 components, max_sampled 30, lr 0.03": {"components": 128, "max_sampled": 30, "learning_rate": 0.03},
    "96 components, max_sampled 20": {"components": 96, "max_sampled": 20},
    # recency: a like weighs 0.5 ** (days before the user's latest training like / half-life)
    "recency half-life 30 days": {"recency_days": 30.0},
    "recency half-life 90 days": {"recency_days": 90.0},
}


def recency_weights(likes, rows: np.ndarray, data, half_life_days: float):  # type: ignore[no-untyped-def]
    """Weights in the order of `likes.tocoo()`: 0.5 ** (days before the user's latest like / half-life)."""
    import scipy.sparse as sp

    users, items, ts = data.users[rows], data.items[rows], data.timestamps[rows]
    latest = np.zeros(likes.shape[0], dtype=np.int64)
    np.maximum.at(latest, users, ts)
    w = 0.5 ** ((latest[users] - ts) / 86400 / half_life_days)
    weighted = sp.csr_matrix((w.astype(np.float32), (users, items)), shape=likes.shape)
    weighted.sum_duplicates()
    assert np.array_equal(weighted.indices, likes.indices) and np.array_equal(weighted.indptr, likes.indptr)
    return weighted.tocoo()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratings", type=Path, default=Path("data/ml-100k"))
    p.add_argument("--out", type=Path, default=Path("bench/tuning.json"))
    p.add_argument("--only", nargs="*", help="run only the candidates whose name contains one of these")
    p.add_argument("--seeds", type=int, default=1, help="repeat each candidate with this many seeds")
    args = p.parse_args()
    raw = read_ratings(args.ratings)
    data = clean(raw, 4.0, 0.01)
    base = lfm.TrainParams(threads=2)
    liked = data.positives(base.min_rating)
    kind, _ = auto_split(data.timestamps)
    split = make_split(kind, data.users, data.timestamps, data.order, liked, base.test_fraction)
    period = np.flatnonzero(split.seen)  # only what the test split leaves for training
    val = make_split(kind, data.users[period], data.timestamps[period], data.order[period], liked[period],
                     base.validation_fraction)  # fmt: skip
    shape = (data.user_ids.size, data.item_ids.size)

    def matrix(rows: np.ndarray):  # type: ignore[no-untyped-def]
        return to_matrix(data.users[rows], data.items[rows], shape)

    fit_m, seen_m, rel_m = matrix(period[val.train]), matrix(period[val.seen]), matrix(period[val.test])
    cat = lfm.catalogue(data.item_ids, raw.movies)
    results = json.loads(args.out.read_text())["results"] if args.out.exists() else {}
    for name, change in CANDIDATES.items():
        if args.only and not any(word in name for word in args.only):
            continue
        runs = []
        change = dict(change)
        half_life = change.pop("recency_days", None)
        weights = None if half_life is None else recency_weights(fit_m, period[val.train], data, float(half_life))  # type: ignore[arg-type]
        for seed in range(args.seeds):
            params = lfm.resolve_epochs(replace(base, seed=base.seed + seed, **change), int(fit_m.nnz))  # type: ignore[arg-type]
            features = lfm.item_features(params.item_features, cat)
            started = time.perf_counter()
            _, epochs, history = lfm.fit(params, fit_m.tocoo(), features, params.epochs or 1, (seen_m, rel_m),
                                         name, progress=False, sample_weight=weights)  # fmt: skip
            smoothed = float(np.mean(history[max(0, epochs - params.smoothing) : epochs]))
            runs.append({"val_ndcg@10_smoothed": round(smoothed, 4), "epochs": epochs,
                         "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
            print(f"{name:<42} seed {params.seed}: validation ndcg@10 {smoothed:.4f} at {epochs} epochs", flush=True)
        results[name] = runs[0] if len(runs) == 1 else {
            "val_ndcg@10_smoothed": round(float(np.mean([r["val_ndcg@10_smoothed"] for r in runs])), 4),
            "runs": runs,
        }  # fmt: skip
        args.out.write_text(json.dumps({"split": val.name, "ratings": str(args.ratings), "results": results}, indent=2))


if __name__ == "__main__":
    main()
