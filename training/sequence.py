"""The order of each user's likes: the transitions SLIST learns from, and the recency weights it serves with.

SLIST (Choi et al., "Session-aware Linear Item-Item Models", WWW 2021) adds to EASE's regression
of each movie on the others a second one over each user's sequence of likes: from a decayed
prefix of the sequence, predict the next likes. Row t of S holds a user's likes up to position t,
the like k positions back weighted ``exp(-k / decay)`` (at most `window` of them); the matching
row of T holds their next `span` likes. Each row of S and of T is scaled to unit length, as SLIST
does, so that a long prefix or a full span weighs as much as a short one. `training.itemitem`
solves both regressions in one ridge system from G = XᵀX, SᵀS and SᵀT, which are all it needs of
S and T.

S and T are built a block of users at a time (`USERS_PER_BLOCK`), each block's products added
into SᵀS and SᵀT, so that S is never held whole: at the ML-10M shape it would have 5 million rows.
Each user's sequence counts its newest `positions` transitions only: a user's taste drifts, and a
few users with thousands of likes would otherwise weigh as much as thousands of users.

Serving scores a user's likes weighted by recency (`recency`): the like k places back from the
newest weighs ``exp(-k / decay)``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from recsys.parts import ITEM_ITEM_LIKES

#: Users whose transitions are built and multiplied at a time (S's rows are their positions).
USERS_PER_BLOCK = 8192
#: Columns of SᵀS and SᵀT computed per product (one thread each).
BLOCK = 1024


class Transitions(NamedTuple):
    """How S and T are built from each user's sequence of likes (see the module's docstring)."""

    decay: float  # of S's prefix weights, in positions
    span: int  # T's next likes
    window: int  # S's likes per row, at most
    positions: int  # a user's newest transitions, at most

    def describe(self) -> dict[str, float | int]:
        return {"prefix_decay": self.decay, "next_likes": self.span, "prefix_window": self.window,
                "positions_per_user": self.positions}  # fmt: skip


def recency(decay: float | None, n: int = ITEM_ITEM_LIKES) -> np.ndarray:
    """The weight of a user's k-th newest like (k = 0 is the newest) in their item-item scores:
    ``exp(-k / decay)``, or 1 for every like when `decay` is None. float32 of shape (n,)."""
    if decay is None:
        return np.ones(n, dtype=np.float32)
    if decay <= 0:
        raise ValueError(f"decay must be positive, got {decay}")
    return np.exp(-np.arange(n, dtype=np.float64) / decay).astype(np.float32)


def chronological(users: np.ndarray, timestamps: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The rows in each user's order of liking: by user, then time, then line in the file."""
    return np.lexsort((order, timestamps, users))


def grams(
    users: np.ndarray, items: np.ndarray, n_items: int, how: Transitions, threads: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """SᵀS and SᵀT (dense float32, (n_items, n_items) each) of the likes `users`, `items`, given in
    each user's order of liking (`chronological`).

    Parameters
    ----------
    users, items : ndarray of int, shape (n,)
        Grouped by user, oldest like first.
    n_items : int
    how : Transitions
    threads : int
    """
    ss = np.zeros((n_items, n_items), dtype=np.float32)
    st = np.zeros((n_items, n_items), dtype=np.float32)
    if users.size == 0:
        return ss, st
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    bounds = np.r_[starts, users.size]
    for first in range(0, starts.size, USERS_PER_BLOCK):
        lo, hi = bounds[first], bounds[min(first + USERS_PER_BLOCK, starts.size)]
        s, t = matrices(users[lo:hi], items[lo:hi], n_items, how)
        _add_products(ss, st, s, t, threads)
    return ss, st


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
    rows = np.flatnonzero((position < length - 1) & (position >= length - 1 - how.positions))
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


def _add_products(ss: np.ndarray, st: np.ndarray, s: sp.csr_matrix, t: sp.csr_matrix, threads: int) -> None:
    """ss += SᵀS and st += SᵀT, a block of `BLOCK` columns per thread."""
    s_t = s.T.tocsr()
    s_c, t_c = s.tocsc(), t.tocsc()
    n = ss.shape[0]

    def block(start: int) -> None:
        stop = min(n, start + BLOCK)
        ss[:, start:stop] += (s_t @ s_c[:, start:stop]).toarray()
        st[:, start:stop] += (s_t @ t_c[:, start:stop]).toarray()

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(block, range(0, n, BLOCK)))
