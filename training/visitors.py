"""The site's visitors as training users: their likes read from the feedback table, screened, and
added to the ratings.

A visitor's like counts as a 5-star rating (`TOP_RATING`), made when the API stored it.
Visitors get user ids above every id of the dataset, so that `training.model.build_artifact` can
leave them out of what is served: they move the movies' vectors, the item-item weights and the
popularity counts, and no visitor has a vector, a history or an id in the model.

One visitor cannot dominate a movie or the model:

* a like is one rating, whoever makes it; a visitor likes a movie at most once (the table's key);
* a visitor's newest `MAX_TRAINING_LIKES` likes train, no more (a dataset user has 20 to 700);
* a visitor is dropped whole when they hold more likes than the API's cap allows (the cap is a
  conditional write, so only a write that went around the API has more), or liked faster than
  `MAX_LIKES_PER_MINUTE` in some minute (a script, not a person).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from recsys.feedback import Like
from training.datasets import RawRatings

MAX_TRAINING_LIKES = 200
MAX_LIKES_PER_MINUTE = 60
#: What a like counts as: the top of every MovieLens format's scale (5 stars).
TOP_RATING = 5.0


@dataclasses.dataclass(frozen=True)
class Screened:
    """The likes that train, by visitor, and what was left out and why."""

    likes: dict[str, list[Like]]
    read: int
    unknown_movies: int
    over_cap: list[str]
    too_fast: list[str]
    beyond_training_cap: int

    def report(self) -> dict[str, Any]:
        """What metrics.json says of the visitors (counts only: no visitor id leaves the job)."""
        return {
            "visitors": len(self.likes),
            "likes": sum(len(v) for v in self.likes.values()),
            "likes_read": self.read,
            "dropped": {
                "unknown_movies": self.unknown_movies,
                "visitors_over_like_cap": len(self.over_cap),
                "visitors_liking_too_fast": len(self.too_fast),
                "likes_beyond_training_cap": self.beyond_training_cap,
            },
            "max_training_likes": MAX_TRAINING_LIKES,
            "max_likes_per_minute": MAX_LIKES_PER_MINUTE,
        }


def screen(likes: Iterable[Like], known_movies: np.ndarray, like_cap: int) -> Screened:
    """Keep the likes of known movies by visitors who pass the rules in this module's docstring."""
    by_visitor: dict[str, list[Like]] = defaultdict(list)
    read = unknown = 0
    known = set(np.asarray(known_movies).tolist())
    for like in likes:
        read += 1
        if like.movie_id in known:
            by_visitor[like.visitor_id].append(like)
        else:
            unknown += 1
    kept: dict[str, list[Like]] = {}
    over_cap, too_fast, beyond = [], [], 0
    for visitor, theirs in sorted(by_visitor.items()):
        theirs.sort(key=lambda x: (x.liked_at, x.movie_id))
        if len(theirs) > like_cap:
            over_cap.append(visitor)
        elif _fastest_minute(theirs) > MAX_LIKES_PER_MINUTE:
            too_fast.append(visitor)
        else:
            beyond += max(0, len(theirs) - MAX_TRAINING_LIKES)
            kept[visitor] = theirs[-MAX_TRAINING_LIKES:]
    return Screened(kept, read, unknown, over_cap, too_fast, beyond)


def _fastest_minute(likes: list[Like]) -> int:
    """The most likes made within any 60 seconds (`likes` sorted by time)."""
    times = np.array([x.liked_at for x in likes], dtype=np.int64)
    return int((np.arange(times.size) - np.searchsorted(times, times - 59) + 1).max(initial=0))


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
