"""The site's visitors as training users: their likes read from the feedback table, screened, and
added to the ratings.

A visitor's like counts as a 5-star rating (`TOP_RATING`), made when the API stored it.
Visitors get user ids above every id of the dataset, so that `training.model.build_artifact` can
leave them out of what is served: they move the movies' vectors, the item-item weights and the
popularity counts, and no visitor has a vector, a history or an id in the model.

A visitor id costs nothing to make, so no rule about one visitor holds an attacker; the rules that
do are about each movie, and they cost time, which ids cannot buy:

* **a movie's budget.** Visitors' likes of movie m that train are at most
  ``floor(MOVIE_SHARE * b_m) + min(d_m, MAX_DAYS)``: b_m is the dataset's likes of m, d_m the
  number of distinct days on which visitors liked m. A thousand ids made in one afternoon move a
  movie nobody liked by one like; the same crowd over a week by seven; a well-liked movie by a
  quarter of its likes at most. Every path that learns from likes (LightFM's vectors and biases,
  the item-item weights, popularity) sees only what is within budget.
* **who fills a budget.** When more visitors liked m than its budget holds, the likes of visitors
  with the most evidence of being people win: likes on more distinct days, then the earlier like.

And one visitor cannot dominate the rest:

* a like is one rating, whoever makes it; a visitor likes a movie at most once (the table's key);
* a visitor's newest `MAX_TRAINING_LIKES` likes train, no more (a dataset user has 20 to 700);
* a visitor is dropped whole when they hold more likes than the API's cap allows (the cap is a
  conditional write, so only a write that went around the API has more), or liked faster than
  `MAX_LIKES_PER_MINUTE` in some minute (a script, not a person);
* a forgotten visitor (their tombstone, `recsys.feedback`) trains nothing, whatever the scan met first.

The scan is read a page at a time and kept as three integer columns; at most `MAX_LIKES_READ`
likes are read in one run (a flood cannot exhaust the job's memory or time), and `report()` says
when the budget cut the scan. What the likes may not do in a fit that is scored (carry held-out
likes) is `leaked_rows`' part.
"""

from __future__ import annotations

import dataclasses
import hashlib
from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.feedback import SHOWN, TOMBSTONE, Like
from training.datasets import RawRatings

MAX_TRAINING_LIKES = 200
MAX_LIKES_PER_MINUTE = 60
#: What a like counts as: the top of every MovieLens format's scale (5 stars).
TOP_RATING = 5.0
#: Of a movie's likes in the dataset, the share that visitors may add to it.
MOVIE_SHARE = 0.25
#: Distinct days of visitors' likes that each add one like to a movie's budget, at most.
MAX_DAYS = 14
#: Likes read from the table in one run, at most (about 24 bytes each while screening).
MAX_LIKES_READ = 2_000_000
#: In a scored fit, a visitor holding at least this share of a user's held-out likes (and two)
#: trains without them (`leaked_rows`).
COPY_SHARE = 0.5
DAY = 86400


@dataclasses.dataclass(frozen=True)
class Screened:
    """The likes that train, by visitor, and what was left out and why."""

    likes: dict[str, list[Like]]
    read: int
    unknown_movies: int
    over_cap: list[str]
    too_fast: list[str]
    beyond_training_cap: int
    forgotten: int = 0
    over_movie_budget: int = 0
    movies_at_budget: int = 0
    scan_cut: bool = False

    def report(self) -> dict[str, Any]:
        """What metrics.json says of the visitors (counts only: no visitor id leaves the job)."""
        return {
            "visitors": len(self.likes),
            "likes": sum(len(v) for v in self.likes.values()),
            "likes_read": self.read,
            "scan": {"max_likes_read": MAX_LIKES_READ, "cut": self.scan_cut},
            "dropped": {
                "unknown_movies": self.unknown_movies,
                "visitors_over_like_cap": len(self.over_cap),
                "visitors_liking_too_fast": len(self.too_fast),
                "visitors_forgotten": self.forgotten,
                "likes_beyond_training_cap": self.beyond_training_cap,
                "likes_over_movie_budget": self.over_movie_budget,
            },
            "movies_at_budget": self.movies_at_budget,
            "movie_budget": {"share_of_dataset_likes": MOVIE_SHARE, "plus_distinct_days_at_most": MAX_DAYS},
            "max_training_likes": MAX_TRAINING_LIKES,
            "max_likes_per_minute": MAX_LIKES_PER_MINUTE,
        }


def base_likes(raw: RawRatings, min_rating: float) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's movies (sorted ids) and how many of its ratings of each are likes (>= `min_rating`)."""
    movies, at = np.unique(raw.items, return_inverse=True)
    return movies, np.bincount(at, weights=raw.ratings >= min_rating, minlength=movies.size).astype(np.int64)


def screen(
    likes: Iterable[Like],
    known_movies: np.ndarray,
    like_cap: int,
    movie_likes: np.ndarray | None = None,
    max_read: int = MAX_LIKES_READ,
) -> Screened:
    """Keep the likes of known movies by visitors who pass the rules in this module's docstring.

    `known_movies` are the dataset's movie ids (sorted), `movie_likes` the dataset's likes of each
    (int, the same shape; None: no movie budget, every like within the other rules trains).
    """
    names: dict[str, int] = {}
    visitor, movie, when = array("q"), array("q"), array("q")
    forgotten: set[int] = set()
    read, cut = 0, False
    for like in likes:
        if read == max_read:
            cut = True
            break
        if like.movie_id == SHOWN:  # counts of shown picks, not a like (`training.online`)
            continue
        code = names.setdefault(like.visitor_id, len(names))
        if like.movie_id == TOMBSTONE:
            forgotten.add(code)
            continue
        read += 1
        visitor.append(code)
        movie.append(like.movie_id)
        when.append(like.liked_at)
    ids = np.array(list(names), dtype=object)
    v, m, t = (np.frombuffer(col, dtype=np.int64) for col in (visitor, movie, when))
    alive = ~np.isin(v, np.fromiter(forgotten, dtype=np.int64, count=len(forgotten)))
    known_movies = np.asarray(known_movies)
    known = np.isin(m, known_movies)
    unknown = int(np.count_nonzero(alive & ~known))
    v, m, t = v[alive & known], m[alive & known], t[alive & known]
    # each visitor's likes in time order: visitors sorted by id, as the rest of the job needs them
    rank = np.argsort(np.argsort(ids)) if ids.size else np.zeros(0, dtype=np.int64)
    order = np.lexsort((m, t, rank[v]))
    v, m, t = v[order], m[order], t[order]
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]]) if v.size else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, v.size])
    fastest = _fastest_minute(rank[v], t, starts)
    group = v[starts]  # each group's visitor
    over = counts > like_cap
    fast = ~over & (fastest > MAX_LIKES_PER_MINUTE)
    dropped = np.repeat(over | fast, counts)
    from_end = np.repeat(starts + counts, counts) - np.arange(v.size)  # 1 for a visitor's newest like
    newest = ~dropped & (from_end <= MAX_TRAINING_LIKES)
    beyond = int(np.count_nonzero(~dropped & ~newest))
    v, m, t = v[newest], m[newest], t[newest]
    over_budget = at_budget = 0
    if movie_likes is not None and v.size:
        keep, over_budget, at_budget = _within_budget(ids, v, m, t, known_movies, np.asarray(movie_likes))
        v, m, t = v[keep], m[keep], t[keep]
    kept: dict[str, list[Like]] = {}
    for code, movie_id, liked_at in zip(v.tolist(), m.tolist(), t.tolist(), strict=True):
        kept.setdefault(ids[code], []).append(Like(ids[code], movie_id, liked_at))
    return Screened(kept, read, unknown, sorted(ids[group[over]]), sorted(ids[group[fast]]), beyond,
                    len(forgotten), over_budget, at_budget, cut)  # fmt: skip


def _fastest_minute(v: np.ndarray, t: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per visitor (`v` ascending, groups at `starts`, each sorted by time), the most likes made
    within any 60 seconds."""
    if not v.size:
        return np.zeros(0, dtype=np.int64)
    # one sorted key: a visitor's times never reach back into the previous visitor's range
    key = v.astype(np.int64) * (1 << 33) + (t - t.min() + 60)
    window = np.arange(v.size) - np.searchsorted(key, key - 59) + 1
    return np.maximum.reduceat(window, starts)


def _within_budget(ids: np.ndarray, v: np.ndarray, m: np.ndarray, t: np.ndarray, known: np.ndarray,
                   movie_likes: np.ndarray) -> tuple[np.ndarray, int, int]:  # fmt: skip
    """Which likes fit their movie's budget (the module's docstring), how many did not, and how many
    movies were at budget."""
    day = t // DAY
    visitor_days = _distinct_counts(v, day)
    movie_days = _distinct_counts(m, day)
    at = np.searchsorted(known, m)
    budget = np.floor(MOVIE_SHARE * movie_likes[at]).astype(np.int64) + np.minimum(movie_days, MAX_DAYS)
    # fill each movie's budget with the likes of the visitors with the most days first, then earliest
    tie = np.array([int.from_bytes(hashlib.sha256(str(x).encode()).digest()[:7]) for x in ids], dtype=np.int64)
    order = np.lexsort((tie[v], t, -visitor_days, m))
    sorted_m = m[order]
    first = np.searchsorted(sorted_m, sorted_m)  # where each movie's run starts
    keep = np.zeros(m.size, dtype=bool)
    keep[order] = np.arange(m.size) - first < budget[order]
    over = int(np.count_nonzero(~keep))
    return keep, over, int(np.unique(m[~keep]).size)


def _distinct_counts(group: np.ndarray, day: np.ndarray) -> np.ndarray:
    """For each like, the number of distinct days among the likes of its group (visitor or movie)."""
    pairs, inverse = np.unique(np.stack([group, day]), axis=1, return_inverse=True)
    groups, per_pair = np.unique(pairs[0], return_inverse=True)
    days = np.bincount(per_pair, minlength=groups.size)
    return days[per_pair][inverse.ravel()]


def leaked_rows(users: np.ndarray, items: np.ndarray, visitor: np.ndarray, held_out: np.ndarray,
                shape: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """The visitors' rows that a fit which is scored must leave out: a visitor's likes of user u's
    held-out movies, when the visitor holds at least `COPY_SHARE` of them (and two). That is what a
    copy of u's likes carries into a fit that is scored on u, and nothing else: an honest visitor
    who likes a few popular movies rarely holds half of anyone's held-out likes, and loses only
    those from the scored fits when they do (the published model trains on every like).

    `users`, `items` are every row's (internal) indices, `visitor` marks the visitors' rows and
    `held_out` the rows held out for scoring (bool, all the same length); `shape` the matrix shape.
    """
    out = np.zeros(users.size, dtype=bool)
    rows = np.flatnonzero(visitor)
    if not rows.size or not held_out.any():
        return out
    per_visitor = np.bincount(users[rows], minlength=shape[0])
    mine = rows[per_visitor[users[rows]] >= 2]  # one like is never two of anyone's
    if not mine.size:
        return out
    hidden = sp.csr_matrix((np.ones(int(held_out.sum()), dtype=np.float32),
                            (users[held_out], items[held_out])), shape=shape)  # fmt: skip
    hidden.data[:] = 1.0  # a movie held out twice (duplicates) counts once
    need = np.maximum(2, np.ceil(COPY_SHARE * np.diff(hidden.indptr)))  # per user
    likes = sp.csr_matrix((np.ones(mine.size, dtype=np.float32), (users[mine], items[mine])), shape=shape)
    visitors_ = np.flatnonzero(np.diff(likes.indptr))
    for start in range(0, visitors_.size, 256):  # a block of visitors against every user at a time
        block = visitors_[start : start + 256]
        shared = (likes[block] @ hidden.T).toarray()
        close = sp.csr_matrix((shared >= need[None, :]) & (shared > 0), dtype=np.float32)
        if not close.nnz:
            continue
        # each visitor's likes of movies held out by a user whose held-out likes they hold
        reachable = sp.csr_matrix((close @ hidden).multiply(likes[block]))
        at = mine[np.isin(users[mine], block)]
        out[at] = np.asarray(reachable[np.searchsorted(block, users[at]), items[at]]).ravel() > 0
    return out


def add_to_ratings(raw: RawRatings, screened: Screened) -> tuple[RawRatings, int | None]:
    """`raw` with every screened like as a top rating by a new user; and the first visitor's user
    id (every visitor's is at least that; None when no visitor is added)."""
    if not screened.likes:
        return raw, None
    first = int(raw.users.max(initial=0)) + 1
    rows = [(first + n, x.movie_id, x.liked_at) for n, (_, theirs) in enumerate(sorted(screened.likes.items()))
            for x in theirs]  # fmt: skip
    users, items, times = (np.array(col, dtype=np.int64) for col in zip(*rows, strict=True))
    top = np.float32(TOP_RATING)
    merged = dataclasses.replace(
        raw,
        users=np.concatenate([raw.users, users.astype(raw.users.dtype)]),
        items=np.concatenate([raw.items, items.astype(raw.items.dtype)]),
        ratings=np.concatenate([raw.ratings, np.full(users.size, top, dtype=raw.ratings.dtype)]),
        timestamps=np.concatenate([raw.timestamps, times.astype(raw.timestamps.dtype)]),
        lines=np.concatenate([raw.lines, raw.total_rows + 1 + np.arange(users.size, dtype=raw.lines.dtype)]),
        total_rows=raw.total_rows + users.size,
    )
    return merged, first
