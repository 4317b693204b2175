"""Per-user time-based hold-out: each user's latest positives go to the test side."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def time_split(users: np.ndarray, timestamps: np.ndarray, order: np.ndarray, fraction: float) -> np.ndarray:
    """Which rows are held out: each user's latest ``floor(fraction * n)`` rows.

    Rounding down means a user with fewer than ``1 / fraction`` rows keeps them all for training,
    and at least one row of every user stays on the training side. Ties in time are broken by
    `order` (the line in the file).

    Parameters
    ----------
    users : ndarray of int, shape (n,)
    timestamps, order : ndarray of int, shape (n,)
    fraction : float in (0, 1)

    Returns
    -------
    ndarray of bool, shape (n,): True where the row is held out.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n = users.shape[0]
    idx = np.lexsort((order, timestamps, users))
    sorted_users = users[idx]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)  # position of the row within its user, by time
    size = np.repeat(counts, counts)
    n_test = np.minimum(np.floor(size * fraction).astype(np.int64), size - 1)
    held = np.zeros(n, dtype=bool)
    held[idx] = rank >= size - n_test
    return held


def to_matrix(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """A binary user-by-item CSR matrix (float32 ones) of the given rows."""
    data = np.ones(users.shape[0], dtype=np.float32)
    m = sp.csr_matrix((data, (users, items)), shape=shape, dtype=np.float32)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m
