"""Replay: what serving a user's latest likes at once is worth, on the test split.

Each evaluated user's held-out likes arrive one at a time, in the order they were made. Before
each arrival the served model recommends `k`, and the replay asks whether that next like is among
them: HR@k, and NDCG@k of the one relevant movie (1 / log2(rank + 2) when it is in the top k).

- **Static**: the user's profile is frozen at training. Their scores never change; only the mask
  grows.
- **Real time**: each arrived like joins the user's item-item side as their newest (weighted by the
  served recency, the newest `ITEM_ITEM_LIKES` counted), as `GET /recommendations/{user_id}` merges
  a known user's live events. LightFM's side, given a `FoldIn`, mixes the trained vector with a
  fold-in of all the user's likes, the arrived ones among them (`recsys.scoring.refold`); without
  one, or at weight 0, it keeps the trained vector.

Both mask the same movies: every movie the user rated on the training side of the split, at any
rating, and the likes that have arrived. The blend, its shares and the z-scores are serving's
(`recsys.scoring.blend`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from recsys.parts import ITEM_ITEM_LIKES
from recsys.scoring import mix, refold, standardize
from training.evaluate import ScoreFn
from training.itemitem import ItemItem

DESCRIPTION = (
    "each test user's held-out likes arrive one at a time, in the order they were made; before each, the "
    "served model recommends 10. Static: the profile frozen at training. Real time: every arrived like "
    "joins the item-item side as the newest, and LightFM's trained vector is mixed with a fold-in of all the "
    "user's likes by the weight chosen on the validation split's replay. Both mask every movie rated on the "
    "training side and the likes already arrived"
)
#: Each replayed like is a ranking of every movie: at most this many (likes × movies) are ranked.
#: That is all of ML-100K's test split (10,696 likes × 1,681 movies), and a sample of users' likes
#: at the ML-10M shape (about 2,200 of 80,000), where replaying all of them took 41 s.
REPLAY_CELLS = 24_000_000
#: The weights of the fold-in in a real-time LightFM vector that validation chooses from (0: the
#: trained vector alone).
FOLD_IN_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0)


class FoldIn(NamedTuple):
    """LightFM's side of a real-time profile: the trained user vectors, the item vectors and biases
    they score with, the fold-in map, each user's training-side likes (a 0/1 csr_matrix, shape
    (n_users, n_items)) and the fold-in's weight (`recsys.scoring.refold`)."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    item_biases: np.ndarray
    projection: np.ndarray
    likes: sp.csr_matrix
    weight: float

    def scores(self, users: np.ndarray, arrived: sp.csr_matrix) -> np.ndarray:
        """LightFM's scores of every item (float32, shape (rows, n_items)) for row r's user
        `users[r]` after the likes in row r of `arrived` (0/1, the same shape)."""
        likes = (self.likes[users] + arrived).tocsr()
        likes.data[:] = 1.0
        counts = np.diff(likes.indptr).astype(np.float32)[:, None]
        means = np.asarray(likes @ self.item_factors, dtype=np.float32) / np.maximum(counts, 1.0)
        vectors = refold(self.user_factors[users], means, self.projection, self.weight)
        vectors = np.where(np.diff(arrived.indptr)[:, None] > 0, vectors, self.user_factors[users])
        out: np.ndarray = vectors @ self.item_factors.T + self.item_biases
        return out


def replay(
    lightfm: ScoreFn, item_item: ItemItem, share: float, newest: sp.csr_matrix, arrivals: tuple[np.ndarray, np.ndarray],
    seen: sp.csr_matrix, users: np.ndarray, k: int = 10, batch: int = 1024, seed: int = 0,
    fold: FoldIn | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Static against real time for the served model (`share` of LightFM, the rest `item_item`).

    Parameters
    ----------
    lightfm : ScoreFn
        The trained LightFM scores of a batch of users.
    item_item : ItemItem
        The served item-item model (its `recency` weighs a user's likes, newest first).
    newest : csr_matrix, shape (n_users, n_items)
        Each user's newest training-side likes, valued 1 + their rank (1: the newest), as
        `training.itemitem.newest_likes` gives them.
    arrivals : (users, items)
        The held-out likes, grouped by user, oldest first (`training.sequence.chronological`).
    seen : csr_matrix, shape (n_users, n_items)
        What each user rated on the training side, masked from every ranking.
    users : ndarray of int
        The users to replay (those without arrivals are skipped): all of them when their arrivals
        fit `REPLAY_CELLS`, else a sample (seeded by `seed`) whose arrivals do.
    fold : FoldIn, optional
        LightFM's side in real time; without it, the trained vector (as `lightfm` scores it).

    Returns
    -------
    dict with ``users``, ``arrivals``, and ``static`` and ``realtime``: ``{"hr@10", "ndcg@10"}``
    (the means over all arrivals), and ``hr_lift``: real time's HR over static's.
    """
    arrival_users, arrival_items = arrivals
    budget = max(1, REPLAY_CELLS // max(1, seen.shape[1]))
    keep = np.isin(arrival_users, _within_budget(arrival_users, users, budget, seed))
    arrival_users, arrival_items = arrival_users[keep], arrival_items[keep]
    starts = np.flatnonzero(np.r_[True, arrival_users[1:] != arrival_users[:-1]])
    if not arrival_users.size:
        starts = starts[:0]
    counts = np.diff(np.r_[starts, arrival_users.size])
    step = np.arange(arrival_users.size) - np.repeat(starts, counts)  # 0: the user's first arrival
    recency = item_item.recency
    b = item_item.matrix()
    shares = np.array([share, 1.0 - share], dtype=np.float32)
    hits = {"static": np.zeros(arrival_users.size), "realtime": np.zeros(arrival_users.size)}
    gains = {"static": np.zeros(arrival_users.size), "realtime": np.zeros(arrival_users.size)}
    for lo in range(0, arrival_users.size, batch):
        rows = np.arange(lo, min(arrival_users.size, lo + batch))
        who, first_in_batch, row_of = np.unique(arrival_users[rows], return_index=True, return_inverse=True)
        firsts = starts[np.searchsorted(starts, rows[first_in_batch], side="right") - 1]  # their step-0 rows
        # `blend`'s arithmetic, each user's LightFM z-scores and frozen scores computed once a batch:
        # frozen, a user's training-side likes; in real time, row r's earlier arrivals (newest
        # first) and then those
        lightfm_z = standardize(np.asarray(lightfm(who), dtype=np.float32))
        frozen = _profiles(firsts, starts, step, arrival_users, arrival_items, newest, recency) @ b
        static = mix(lightfm_z, standardize(np.asarray(frozen.toarray(), dtype=np.float32)), shares)[row_of]
        moving = _profiles(rows, starts, step, arrival_users, arrival_items, newest, recency) @ b
        moving_lightfm = lightfm_z[row_of]
        if fold is not None and fold.weight:
            arrived = _arrived(rows, starts, step, arrival_items, seen.shape[1])
            moving_lightfm = standardize(fold.scores(arrival_users[rows], arrived))
        realtime = mix(moving_lightfm, standardize(np.asarray(moving.toarray(), dtype=np.float32)), shares)
        for name, scores in (("static", static), ("realtime", realtime)):
            rank = _ranks(scores, rows, starts, step, arrival_users, arrival_items, seen)
            hits[name][rows] = rank < k
            gains[name][rows] = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    n = max(arrival_users.size, 1)
    out: dict[str, Any] = {
        "users": int(starts.size),
        "arrivals": int(arrival_users.size),
        "static": {f"hr@{k}": round(float(hits["static"].sum() / n), 6),
                   f"ndcg@{k}": round(float(gains["static"].sum() / n), 6)},
        "realtime": {f"hr@{k}": round(float(hits["realtime"].sum() / n), 6),
                     f"ndcg@{k}": round(float(gains["realtime"].sum() / n), 6)},
    }  # fmt: skip
    static_hr = out["static"][f"hr@{k}"]
    out["hr_lift"] = round(out["realtime"][f"hr@{k}"] / static_hr, 4) if static_hr else None
    return out


def _within_budget(arrival_users: np.ndarray, users: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """`users`, or when their arrivals number more than `budget`, a seeded sample of them taken in
    random order while the arrivals fit."""
    counts = np.bincount(arrival_users, minlength=int(users.max(initial=-1)) + 1)[users] if users.size else users
    if counts.sum() <= budget:
        return users
    order = np.random.default_rng(seed).permutation(users.size)
    fits = np.cumsum(counts[order]) <= budget
    return np.sort(users[order[fits]])


def _profiles(
    rows: np.ndarray, starts: np.ndarray, step: np.ndarray, users: np.ndarray, items: np.ndarray,
    newest: sp.csr_matrix, recency: np.ndarray,
) -> sp.csr_matrix:  # fmt: skip
    """One row per arrival in `rows`: its user's `step` earlier arrivals (newest first), then their
    training-side likes (newest first), the newest `ITEM_ITEM_LIKES` of them weighted by `recency`."""
    first = np.searchsorted(starts, rows, side="right") - 1  # each row's user's first arrival
    out_rows, out_cols, out_vals = [], [], []
    for r, (row, begin) in enumerate(zip(rows.tolist(), starts[first].tolist(), strict=True)):
        earlier = items[begin : begin + int(step[row])][::-1]
        u = int(users[row])
        lo, hi = newest.indptr[u], newest.indptr[u + 1]
        trained = newest.indices[lo:hi][np.argsort(newest.data[lo:hi], kind="stable")]
        likes = np.concatenate((earlier, trained))[:ITEM_ITEM_LIKES]
        out_rows.append(np.full(likes.size, r))
        out_cols.append(likes)
        out_vals.append(recency[: likes.size])
    shape = (rows.size, newest.shape[1])
    if not out_rows:
        return sp.csr_matrix(shape, dtype=np.float32)
    return sp.csr_matrix((np.concatenate(out_vals), (np.concatenate(out_rows), np.concatenate(out_cols))), shape=shape)


def _arrived(rows: np.ndarray, starts: np.ndarray, step: np.ndarray, items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """One 0/1 row per arrival in `rows`: its user's earlier arrivals."""
    first = starts[np.searchsorted(starts, rows, side="right") - 1]
    earlier = step[rows]
    at = np.repeat(np.arange(rows.size), earlier)
    back = np.arange(int(earlier.sum())) - np.repeat(np.cumsum(earlier) - earlier, earlier)
    cols = items[np.repeat(first, earlier) + back]
    return sp.csr_matrix((np.ones(cols.size, dtype=np.float32), (at, cols)), shape=(rows.size, n_items))


def _ranks(
    scores: np.ndarray, rows: np.ndarray, starts: np.ndarray, step: np.ndarray, users: np.ndarray, items: np.ndarray,
    seen: sp.csr_matrix,
) -> np.ndarray:  # fmt: skip
    """Each arrival's 0-based rank in its row of `scores` (modified: masked in place), best first,
    equal scores by movie index as `recsys.scoring.top_k` orders them; seen movies and the user's
    earlier arrivals are masked."""
    mask = seen[users[rows]]
    scores[np.repeat(np.arange(rows.size), np.diff(mask.indptr)), mask.indices] = -np.inf
    first = np.searchsorted(starts, rows, side="right") - 1
    earlier = step[rows]
    at = np.repeat(np.arange(rows.size), earlier)
    back = np.arange(int(earlier.sum())) - np.repeat(np.cumsum(earlier) - earlier, earlier)
    scores[at, items[np.repeat(starts[first], earlier) + back]] = -np.inf
    target = items[rows]
    value = scores[np.arange(rows.size), target][:, None]
    index = np.arange(scores.shape[1])[None, :]
    rank: np.ndarray = (scores > value).sum(axis=1) + ((scores == value) & (index < target[:, None])).sum(axis=1)
    return rank
