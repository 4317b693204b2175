"""Ranking metrics, computed the same way for every model.

Each evaluated user's items are ranked by the model's scores with every movie the user has *seen*
(rated at any rating on the training side of the split) removed from the ranking, exactly as
serving never recommends a seen movie; the held-out likes are the relevant items. Users with no
held-out item are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict

import numpy as np
import scipy.sparse as sp

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Scores of every item for a batch of user indices: (batch,) -> (batch, n_items)."""

#: What `evaluate` reports: the @10 figures, the users evaluated, and precision and recall at 1..20.
Evaluation = TypedDict("Evaluation", {
    "precision@10": float, "recall@10": float, "ndcg@10": float, "map@10": float, "mrr": float, "auc": float,
    "coverage@10": float, "ndcg@10_se": float, "users": int, "curves": dict[str, list[float]],
})  # fmt: skip

METRICS = ("precision@10", "recall@10", "ndcg@10", "map@10", "mrr", "auc", "coverage@10")


def evaluate(
    score: ScoreFn,
    seen: sp.csr_matrix,
    test: sp.csr_matrix,
    k: int = 10,
    curve_k: int = 20,
    users: np.ndarray | None = None,
    batch: int = 512,
) -> Evaluation:
    """Mean ranking metrics over the users with held-out items.

    Parameters
    ----------
    score : ScoreFn
    seen, test : csr_matrix, shape (n_users, n_items)
        Binary; `seen` items are excluded from each user's ranking, `test` items are relevant.
    k : int
        Cut-off of precision, recall, ndcg, map and coverage.
    curve_k : int
        precision@j and recall@j are also returned for j = 1..curve_k (the report's curves).
    users : ndarray of int, optional
        Evaluate only these users (a sample, for large data); default all with test items.

    Returns
    -------
    dict with the names in `METRICS` (floats), ``"ndcg@10_se"`` (its standard error), ``"users"`` (how
    many were evaluated), and
    ``"curves"``: ``{"precision": [...], "recall": [...]}`` for j = 1..curve_k.
    """
    n_items = seen.shape[1]
    has_test = np.diff(test.indptr) > 0
    candidates = np.flatnonzero(has_test) if users is None else users[has_test[users]]
    depth = max(k, curve_k)
    discounts = 1.0 / np.log2(np.arange(2, depth + 2))

    def run(chunk: np.ndarray) -> tuple[dict[str, float], np.ndarray, np.ndarray, np.ndarray]:
        """One batch's sums: ndcg, map, mrr, auc; precision@j and recall@j numerators; items in a top k."""
        sums = dict.fromkeys(("ndcg", "ndcg_sq", "map", "mrr", "auc"), 0.0)
        hits_at = np.zeros(depth, dtype=np.float64)
        recall_at = np.zeros(depth, dtype=np.float64)
        raw = score(chunk)  # float32 stays float32 (sorted faster, the same order); a copy, masked below
        scores = np.array(raw, dtype=np.result_type(raw.dtype, np.float32))
        tr = seen[chunk]
        rows = np.repeat(np.arange(chunk.size), np.diff(tr.indptr))
        scores[rows, tr.indices] = -np.inf
        # Each held-out item's rank is what a stable sort of the scores, best first, would give it:
        # the scores above it, plus the equal ones at a lower index. Counted against each row's
        # sorted values (a third of the time of sorting the indices, which this used to do).
        ranked = np.sort(scores, axis=1)
        te = test[chunk]
        tops = []
        for r in range(chunk.size):
            row, values_sorted = scores[r], ranked[r]
            relevant = te.indices[te.indptr[r] : te.indptr[r + 1]]
            values = row[relevant]
            below = np.searchsorted(values_sorted, values, "left")
            up_to = np.searchsorted(values_sorted, values, "right")
            pos = n_items - up_to
            for t in np.flatnonzero(up_to - below > 1).tolist():  # ties: those at a lower index come first
                pos[t] += np.count_nonzero(row[: relevant[t]] == values[t])
            pos.sort()  # 0-based ranks of the held-out items
            n_rel = relevant.size
            n_seen = tr.indptr[r + 1] - tr.indptr[r]
            hit = np.zeros(depth, dtype=np.float64)
            hit[pos[pos < depth]] = 1.0
            cum = np.cumsum(hit)
            hits_at += cum
            recall_at += cum / n_rel
            ideal = discounts[: min(n_rel, k)].sum()
            ndcg = float((hit[:k] * discounts[:k]).sum() / ideal)
            sums["ndcg"] += ndcg
            sums["ndcg_sq"] += ndcg * ndcg
            in_k = pos[pos < k]
            sums["map"] += float(((np.arange(in_k.size) + 1) / (in_k + 1)).sum() / min(n_rel, k))
            sums["mrr"] += 1.0 / (int(pos[0]) + 1)
            n_neg = n_items - n_seen - n_rel
            if n_neg > 0:
                negatives_above = pos - np.arange(n_rel)
                sums["auc"] += float(np.mean(1.0 - negatives_above / n_neg))
            else:
                sums["auc"] += 1.0
            best = np.flatnonzero(row >= values_sorted[n_items - min(k, n_items)])  # the top k, and ties
            tops.append(best[np.lexsort((best, -row[best]))[:k]])
        return sums, hits_at, recall_at, np.unique(np.concatenate(tops)) if tops else np.empty(0, np.int64)

    # Batches on two threads (the sort, most of the time, releases the GIL); summed in batch order,
    # so the result does not depend on which thread finished first.
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(run, [candidates[i : i + batch] for i in range(0, candidates.size, batch)]))
    sums = {name: sum(part[0][name] for part in parts) for name in ("ndcg", "ndcg_sq", "map", "mrr", "auc")}
    hits_at = np.sum([part[1] for part in parts], axis=0) if parts else np.zeros(depth)
    recall_at = np.sum([part[2] for part in parts], axis=0) if parts else np.zeros(depth)
    recommended = np.zeros(n_items, dtype=bool)
    for part in parts:
        recommended[part[3]] = True
    n = max(candidates.size, 1)
    j = np.arange(1, depth + 1)
    precision_curve = hits_at / n / j
    recall_curve = recall_at / n
    return {
        "precision@10": float(precision_curve[k - 1]),
        "recall@10": float(recall_curve[k - 1]),
        "ndcg@10": sums["ndcg"] / n,
        # the standard error of that mean over the users (how far another sample of users could move it)
        "ndcg@10_se": float(np.sqrt(max(sums["ndcg_sq"] / n - (sums["ndcg"] / n) ** 2, 0.0) / n)),
        "map@10": sums["map"] / n,
        "mrr": sums["mrr"] / n,
        "auc": sums["auc"] / n,
        "coverage@10": float(recommended.sum() / n_items),
        "users": int(candidates.size),
        "curves": {
            "precision": [round(float(v), 6) for v in precision_curve[:curve_k]],
            "recall": [round(float(v), 6) for v in recall_curve[:curve_k]],
        },
    }


def popularity_scorer(train: sp.csr_matrix) -> ScoreFn:
    """Scores for the popularity baseline: like counts, ties broken by index (no equal scores)."""
    counts = np.asarray(train.sum(axis=0)).ravel().astype(np.float64)
    n = counts.size
    strict = counts * (n + 1) + (n - np.arange(n))  # same order as counts; lower index first on ties
    return lambda users: np.broadcast_to(strict, (users.size, n))
