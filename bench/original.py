"""The original study's serving method next to ours, on the same model and the same requests.

Original, per request:
- recommend: ``LightFM.predict`` over every movie the user has not liked, then a full argsort;
- similar: a row of the precomputed item-item cosine matrix, fully argsorted (precomputing the
  matrix once is the kind reading of "argsort of the cosine matrix"; computing it per request
  would be far slower).

Ours: ``ModelArtifact.recommend`` / ``.similar`` (float32 dot products, argpartition, top-k sort).
Both return the same top-k (up to ties), which `agreement` checks on every request.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def original_recommend(model: Any, liked: np.ndarray, n_items: int, u: int, k: int) -> np.ndarray:
    unseen = np.setdiff1d(np.arange(n_items, dtype=np.int32), liked, assume_unique=False)
    scores = model.predict(u, unseen, num_threads=1)
    return unseen[np.argsort(-scores)[:k]]


def original_similar(cosine: np.ndarray, i: int, k: int) -> np.ndarray:
    order = np.argsort(-cosine[i])
    return order[order != i][:k]


def compare(model: Any, artifact: Any, requests: int, seed: int = 0, k: int = 10) -> dict[str, Any]:
    """Per-request seconds of both methods, and how often their top-k sets agree."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, artifact.n_users, size=requests)
    items = rng.integers(0, artifact.n_items, size=requests)
    liked = [artifact.history_items[artifact.liked(int(u))].astype(np.int32) for u in users]
    cosine = artifact.item_unit @ artifact.item_unit.T  # the original's precomputed matrix (n_items^2 float32)
    out: dict[str, Any] = {name: np.empty(requests) for name in ("original_recommend", "ours_recommend",
                                                                   "original_similar", "ours_similar")}  # fmt: skip
    same_rec = same_sim = 0
    for n in range(requests):
        u, i = int(users[n]), int(items[n])
        t = time.perf_counter()
        theirs = original_recommend(model, liked[n], artifact.n_items, u, k)
        out["original_recommend"][n] = time.perf_counter() - t
        t = time.perf_counter()
        ours, _ = artifact.recommend(u, k)
        out["ours_recommend"][n] = time.perf_counter() - t
        same_rec += len(set(theirs.tolist()) & set(ours.tolist())) >= k - 1  # float ties may swap the last
        t = time.perf_counter()
        theirs = original_similar(cosine, i, k)
        out["original_similar"][n] = time.perf_counter() - t
        t = time.perf_counter()
        ours, _ = artifact.similar(i, k)
        out["ours_similar"][n] = time.perf_counter() - t
        same_sim += len(set(theirs.tolist()) & set(ours.tolist())) >= k - 1
    out["agreement"] = {"recommend": same_rec / requests, "similar": same_sim / requests}
    return out
