"""Hold-out splits: per user (each user's latest likes) or global (one time cut), with seen masks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.sequence import chronological


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
    idx = chronological(users, timestamps, order)
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


SPLITS = ("per-user", "global")


@dataclass(frozen=True)
class Split:
    """Which rating rows play which part in one evaluation: boolean masks of shape (n,) over the rows.

    train : the likes a model learns from.
    seen : every rating masked out of the user's ranking, as serving masks it (``train`` ⊆ ``seen``).
    test : the held-out likes, the relevant items.
    """

    name: str
    description: str
    train: np.ndarray
    seen: np.ndarray
    test: np.ndarray
    detail: Mapping[str, object]


def per_user_split(
    users: np.ndarray, timestamps: np.ndarray, order: np.ndarray, liked: np.ndarray, fraction: float
) -> Split:
    """Each user's latest ``floor(fraction * likes)`` likes are held out (`time_split` on the likes).

    Seen is every rating of the user up to their last training-side like, in (time, line) order,
    at any rating. Other users' later ratings stay on the training side: this is a per-user
    leave-latest-out protocol, not a global time cut.
    """
    n = users.shape[0]
    liked_rows = np.flatnonzero(liked)
    test = np.zeros(n, dtype=bool)
    test[liked_rows[time_split(users[liked_rows], timestamps[liked_rows], order[liked_rows], fraction)]] = True
    train = liked & ~test
    rank = _time_rank(timestamps, order)
    cutoff = np.full(int(users.max(initial=-1)) + 1, -1, dtype=np.int64)
    np.maximum.at(cutoff, users[train], rank[train])
    seen = rank <= cutoff[users]
    description = (
        f"per user, the latest {fraction:.0%} (rounded down) of each user's likes are held out; "
        "other users' later ratings stay in training"
    )
    return Split("per_user_latest_likes", description, train, seen & ~test, test, {"test_fraction": fraction})


def global_split(
    users: np.ndarray, timestamps: np.ndarray, order: np.ndarray, liked: np.ndarray, fraction: float
) -> Split:
    """One time cut for everybody: the latest ``floor(fraction * n)`` ratings, in (time, line) order,
    are after it.

    Likes after the cut are held out, for the users who also have a like before it (the only ones
    a model can rank for); everything before the cut is training and seen.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n = users.shape[0]
    rank = _time_rank(timestamps, order)
    cut = n - int(np.floor(fraction * n))
    after = rank >= cut
    train = liked & ~after
    has_train = np.bincount(users[train], minlength=int(users.max(initial=-1)) + 1) > 0
    test = liked & after & has_train[users]
    first_after = np.flatnonzero(rank == cut)
    cut_ts = int(timestamps[first_after[0]]) if first_after.size else None
    when = dt.datetime.fromtimestamp(cut_ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if cut_ts is not None else "-"
    description = (
        f"one time cut for everybody at {when}: the latest {fraction:.0%} of all ratings are after it; "
        "evaluated on the users with likes on both sides"
    )
    detail = {"test_fraction": fraction, "cut_timestamp": cut_ts}
    return Split("global_time_cut", description, train, ~after, test, detail)


def make_split(
    kind: str, users: np.ndarray, timestamps: np.ndarray, order: np.ndarray, liked: np.ndarray, fraction: float
) -> Split:
    if kind == "per-user":
        return per_user_split(users, timestamps, order, liked, fraction)
    if kind == "global":
        return global_split(users, timestamps, order, liked, fraction)
    raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {kind!r}")


# ML-100K spans 7 months, ML-1M about 3 years of which most in the first year, ML-10M 14 years.
GLOBAL_SPLIT_MIN_SPAN_DAYS = 2 * 365


def auto_split(timestamps: np.ndarray) -> tuple[str, str]:
    """per-user where the data spans under two years, global otherwise; and the reason."""
    span = float(np.ptp(timestamps)) / 86400 if timestamps.size else 0.0
    kind = "global" if span >= GLOBAL_SPLIT_MIN_SPAN_DAYS else "per-user"
    return kind, f"auto: the ratings span {span:.0f} days"


def _time_rank(timestamps: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Each row's position in (time, line) order, int64."""
    rank = np.empty(timestamps.shape[0], dtype=np.int64)
    rank[np.lexsort((order, timestamps))] = np.arange(timestamps.shape[0])
    return rank
