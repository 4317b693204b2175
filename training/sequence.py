"""The order of each user's likes: the transitions SLIST learns from, and the recency weights it serves with.

SLIST (Choi et al., "Session-aware Linear Item-Item Models", WWW 2021) adds to EASE's regression
of each movie on the others a second one over each user's sequence of likes: from a decayed
prefix of the sequence, predict the next likes. Row t of S holds a user's likes up to position t,
the like k positions back weighted ``exp(-k / decay)`` (at most `window` of them); the matching
row of T holds their next `span` likes. Each row of S and of T is scaled to unit length, as SLIST
does, so that a long prefix or a full span weighs as much as a short one. `training.itemitem`
solves both regressions in one ridge system from G = XᵀX, SᵀS and SᵀT, which are all it needs of
S and T.

SᵀS and SᵀT are summed from pairs of each user's likes (`add`): S is never built, which at the
ML-10M shape would have millions of rows (`matrices` builds it, to define what they are).
Each user's sequence can be capped to its newest `positions` transitions. On ML-100K's validation
split every transition counting scored best (0.2136 ndcg@10 against 0.2125 with the newest 50), so
the dense model counts them all; above `DENSE_MAX_ITEMS` the cap bounds the cost.

Serving scores a user's likes weighted by recency (`recency`): the like k places back from the
newest weighs ``exp(-k / decay)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from recsys.parts import ITEM_ITEM_LIKES


class Transitions(NamedTuple):
    """How S and T are built from each user's sequence of likes (see the module's docstring)."""

    decay: float  # of S's prefix weights, in positions
    span: int  # T's next likes
    window: int  # S's likes per row, at most
    positions: int | None = None  # a user's newest transitions, at most (None: all of them)

    def describe(self) -> dict[str, float | int | str]:
        return {"prefix_decay": self.decay, "next_likes": self.span, "prefix_window": self.window,
                "positions_per_user": "all" if self.positions is None else self.positions}  # fmt: skip


def recency(decay: float | None, n: int = ITEM_ITEM_LIKES) -> np.ndarray:
    """The weight of a user's k-th newest like (k = 0 is the newest) in their item-item scores:
    ``exp(-k / decay)``, or 1 for every like when `decay` is None. float32 of shape (n,)."""
    if decay is None:
        return np.ones(n, dtype=np.float32)
    if decay <= 0:
        raise ValueError(f"decay must be positive, got {decay}")
    return np.exp(-np.arange(n, dtype=np.float64) / decay).astype(np.float32)


def chronological(users: np.ndarray, timestamps: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The rows in each user's order of liking: by user, then time, then line in the file.

    The rows are usually in the file's order already; then one stable sort of a key made of the
    user and the time gives the same order as sorting by all three, a tenth of the time (2.4 s at
    the ML-10M shape)."""
    n = users.shape[0]
    if n and np.all(order[1:] > order[:-1]):
        t0, span = int(timestamps.min()), int(timestamps.max()) - int(timestamps.min()) + 1
        if (int(users.max()) + 1) * span < np.iinfo(np.int64).max and int(users.min()) >= 0:
            key = users.astype(np.int64) * span + (timestamps.astype(np.int64) - t0)
            return np.argsort(key, kind="stable")
    return np.lexsort((order, timestamps, users))


def grams(users: np.ndarray, items: np.ndarray, n_items: int, how: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """SᵀS and SᵀT (dense float32, (n_items, n_items) each) of the likes `users`, `items`, given in
    each user's order of liking (`chronological`), S and T as `matrices` builds them.

    Parameters
    ----------
    users, items : ndarray of int, shape (n,)
        Grouped by user, oldest like first.
    n_items : int
    how : Transitions
    """
    ss = np.zeros((n_items, n_items), dtype=np.float32)
    st = np.zeros((n_items, n_items), dtype=np.float32)
    add(ss, st, users, items, how)
    return ss, st


def add(
    ss: np.ndarray, st: np.ndarray, users: np.ndarray, items: np.ndarray, how: Transitions, sign: float = 1.0
) -> None:
    """Add `sign` times SᵀS and SᵀT of these likes (as `grams` takes them) into `ss` and `st`, in place.

    Never S itself: entry (i, j) of SᵀS is a sum over the pairs of one user's positions (p, q)
    holding i and j, |p − q| < `window`, of what the rows t of S that hold both give it,
    ``w[t−p] w[t−q] / ‖s_t‖²``; of SᵀT, over the pairs p < q ≤ p + window − 1 + span, of
    ``w[t−p] / (‖s_t‖ ‖T_t‖)`` for the rows whose prefix holds p and whose next likes hold q. Each
    sum has at most `window` terms, so both are built from about 30 pairs a like, one
    `np.add.at` each, instead of S's products (a third of the time at the ML-10M shape).
    """
    n = users.size
    if n == 0:
        return
    n_items = ss.shape[1]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    lengths = np.diff(np.r_[starts, n])
    position = np.arange(n) - np.repeat(starts, lengths)
    last = np.repeat(lengths, lengths) - 2  # each like's user's last transition (a row of S and T)
    first = np.maximum(0, last + 1 - _cap(how.positions, n))  # and their first: the newest `positions` count
    # only the likes in some counted row's prefix or next likes: a suffix of each user's, so a pair
    # (p, p + lag) of what is kept is still one user's
    near = np.flatnonzero(position >= first - (how.window - 1))
    # int32 where it fits: these arrays are read once a lag, and half the bytes are most of the speed
    small: type[np.signedinteger[Any]] = np.int32 if lengths.max() < np.iinfo(np.int32).max else np.int64
    wide: type[np.signedinteger[Any]] = np.int32 if n_items * n_items < np.iinfo(np.int32).max else np.int64
    items, n = items[near].astype(wide), near.size  # as flat positions in ss and st, with `row`
    position, first = position[near].astype(small), first[near].astype(small)
    room: np.ndarray = last[near].astype(small) - position  # transitions left after each like's position
    row = items * wide(n_items)  # each like's row of SᵀS and SᵀT, as a flat position
    w = np.exp(-np.arange(how.window) / how.decay)
    norm = np.sqrt(np.cumsum(w * w))  # ‖s_t‖ of a row t holding min(t + 1, window) likes: norm[min(t, window - 1)]
    full = how.window - 1  # from this row on, every row of S holds `window` likes
    for lag in range(min(how.window, int(lengths.max()))):  # SᵀS: pairs (p, q = p + lag)
        p = np.flatnonzero(room[: n - lag] >= lag)
        start = position[p] + lag  # the rows t = start + e, e < window - lag, hold both

        def ss_term(e: np.ndarray, t: np.ndarray, _: np.ndarray, lag: int = lag) -> np.ndarray:
            term: np.ndarray = w[lag + e] * w[e] / norm[t] ** 2
            return term

        hi = how.window - lag - 1
        weight = _rows_sum(start, 0, hi, first[p], position[p] + room[p], _table(ss_term, 0, hi, full, hi))
        _scatter(ss, row[p] + items[p + lag], weight, sign)
        if lag:
            _scatter(ss, row[p + lag] + items[p], weight, sign)
    for lag in range(1, min(how.window + how.span, int(lengths.max()))):  # SᵀT: pairs (p, q = p + lag)
        p = np.flatnonzero(room[: n - lag] >= lag - 1)
        start = position[p]  # rows t = start + e, up to the user's last: p in the prefix, q among the next
        lo, hi = max(0, lag - how.span), min(how.window, lag) - 1

        def st_term(e: np.ndarray, t: np.ndarray, left: np.ndarray) -> np.ndarray:
            targets = np.maximum(1, np.minimum(how.span, left + 1))  # the next likes row t has
            term: np.ndarray = w[e] / (norm[t] * np.sqrt(targets))
            return term

        table = _table(st_term, lo, hi, full, hi + how.span - 1)
        weight = _rows_sum(start, lo, hi, first[p], start + room[p], table)
        _scatter(st, row[p] + items[p + lag], weight, sign)


def _table(
    term: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], lo: int, hi: int, full: int, reach: int
) -> np.ndarray:
    """What a pair gets from the rows t = start + e, lo <= e <= hi, as `_rows_sum` looks it up:
    entry [s, k, d] sums ``term(e, min(s + e, full), d - e)`` over lo + k <= e <= min(d, hi), for
    s = min(start, full) and d = the rows left after `start` (below lo: none; from `reach` on,
    every row of the sum has all its next likes). A row's term depends on t only below `full`
    (from there on its prefix is whole), so the table has (full + 1) · (hi − lo + 2) · (reach − lo + 2)
    entries: a few thousand, for millions of pairs. With one look-up a pair, SᵀS and SᵀT take
    3.4 s at the ML-10M shape, against 4.9 s when each pair summed its rows' terms; on ML-100K
    the two give the same matrices to the bit."""
    e = np.arange(lo, hi + 1)
    table = np.zeros((full + 1, hi - lo + 2, reach - lo + 2))
    for s in range(full + 1):
        for d in range(lo, reach + 1):
            terms = np.where(e <= d, term(e, np.minimum(s + e, full), d - e), 0.0)
            table[s, :-1, d - lo + 1] = np.cumsum(terms[::-1])[::-1]  # from lo + k to hi
    return table


def _rows_sum(
    start: np.ndarray, lo: int, hi: int, first: np.ndarray, last: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """For each pair, the sum over the rows t = start + e, lo <= e <= hi, that are counted
    (first <= t <= last), of what row t gives it: one look-up in `table` (`_table`). float64,
    shape of `start`."""
    full, rows, reach = table.shape[0] - 1, table.shape[1], table.shape[2]
    s = np.minimum(start, full)
    k = np.clip(first - start, lo, hi + 1) - lo
    d = np.clip(last - start, lo - 1, lo + reach - 2) - (lo - 1)
    weight: np.ndarray = table.reshape(-1)[(s * rows + k) * reach + d]
    return weight


def _scatter(into: np.ndarray, at: np.ndarray, weight: np.ndarray, sign: float) -> None:
    """into's flat positions `at` += sign * weight, repeated positions adding up; zero weights skipped."""
    nonzero = weight > 0
    np.add.at(into.reshape(-1), at[nonzero], (sign * weight[nonzero]).astype(np.float32))


def _cap(positions: int | None, n: int) -> int:
    """`positions`, or `n` (more than any user has) for None."""
    return n if positions is None else positions


def matrices(
    users: np.ndarray, items: np.ndarray, n_items: int, how: Transitions
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """S and T (float32 CSR, one row per transition) of likes grouped by user, oldest first."""
    n = users.size
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if n else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, n])
    position = np.arange(n) - np.repeat(starts, lengths)  # within the user, 0 = their oldest
    length = np.repeat(lengths, lengths)
    # a transition at every position with a next like, the user's newest `positions` of them
    rows = np.flatnonzero((position < length - 1) & (position >= length - 1 - _cap(how.positions, n)))
    index = np.full(n, -1, dtype=np.int64)
    index[rows] = np.arange(rows.size)
    s_rows, s_cols, s_vals, t_rows, t_cols = [], [], [], [], []
    for back in range(min(how.window, int(lengths.max(initial=1)))):
        ok = position[rows] >= back
        s_rows.append(index[rows[ok]])
        s_cols.append(items[rows[ok] - back])
        s_vals.append(np.full(int(ok.sum()), np.exp(-back / how.decay), dtype=np.float32))
    for ahead in range(1, how.span + 1):
        ok = position[rows] + ahead < length[rows]
        t_rows.append(index[rows[ok]])
        t_cols.append(items[rows[ok] + ahead])
    shape = (rows.size, n_items)
    s = sp.csr_matrix((np.concatenate(s_vals), (np.concatenate(s_rows), np.concatenate(s_cols))), shape=shape)
    t_row = np.concatenate(t_rows)
    t = sp.csr_matrix((np.ones(t_row.size, dtype=np.float32), (t_row, np.concatenate(t_cols))), shape=shape)
    return _unit_rows(s), _unit_rows(t)


def _unit_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """`m` (CSR, no repeated entry in a row) with each non-empty row scaled to unit length."""
    squares = np.bincount(np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)), weights=m.data.astype(np.float64) ** 2,
                          minlength=m.shape[0])  # fmt: skip
    norms = np.sqrt(squares)
    m.data /= np.repeat(np.where(norms > 0, norms, 1.0), np.diff(m.indptr)).astype(np.float32)
    return m
