"""The site's own users' events (``POST /events``, `recsys.events`) merged into the ratings, so that
training learns them as themselves.

* A user's event becomes their own rating of the movie, at the event's time: a like is the top
  of the dataset's rating scale, an unlike its bottom (seen, not liked), a rating its value.
  Cleaning keeps each (user, movie)'s latest rating, so the latest of an event and the file's
  row wins.
* An id the ratings file does not have is a new user of the site: trained and served by that id
  after the retrain (unlike an anonymous visitor, `training.visitors`).
* A forgotten user (a tombstone) leaves no trace: every rating of theirs older than the tombstone
  goes, the ratings file's included; only what they did after it counts.
* Events are trusted (the site's backend signed them) but pass the rules any rating does: a
  rating off the dataset's scale, or a movie the dataset does not have, is dropped and counted.

The split and the gate stay comparable: events join the ratings before the split, as rows of the
file would, so the per-user split holds out each user's latest likes whether they came from the
file or from events, and the gate compares models evaluated by that one rule. (Visitors, who are
untrusted, stay out of the scored fit: `training.visitors`.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from recsys.events import TOMBSTONE, Event
from training.datasets import RawRatings


class Merged(NamedTuple):
    raw: RawRatings
    report: dict[str, Any]


def merge(raw: RawRatings, events: Iterable[tuple[int, Event]]) -> Merged:
    """`raw` with `events` ((user id, event) pairs, as `recsys.events.all_events` yields them)
    merged as the module's docstring says, and what was done (for metrics.json)."""
    scale = np.unique(raw.ratings)
    top, bottom = float(scale[-1]), float(scale[0])
    forgotten: dict[int, int] = {}
    user_col: list[int] = []
    item_col: list[int] = []
    rating_col: list[float] = []
    at_col: list[int] = []
    for user, event in events:
        if event.movie_id == TOMBSTONE:
            forgotten[user] = max(forgotten.get(user, 0), event.at)
            continue
        rating = top if event.kind == "like" else bottom if event.kind == "unlike" else event.rating
        user_col.append(user)
        item_col.append(event.movie_id)
        rating_col.append(np.nan if rating is None else rating)
        at_col.append(event.at)
    cols = (user_col, item_col, rating_col, at_col)
    users, items = np.asarray(cols[0], dtype=np.int64), np.asarray(cols[1], dtype=np.int64)
    ratings, ms = np.asarray(cols[2], dtype=raw.ratings.dtype), np.asarray(cols[3], dtype=np.int64)
    known = np.isin(items, raw.items)
    on_scale = np.isin(ratings, scale)
    after = ms > np.asarray([forgotten.get(u, -1) for u in users.tolist()], dtype=np.int64)
    dropped = {"unknown_movie": int((~known).sum()), "off_scale": int((known & ~on_scale).sum()),
               "before_forget": int((known & on_scale & ~after).sum())}  # fmt: skip
    keep = known & on_scale & after
    users, items, ratings, ms = users[keep], items[keep], ratings[keep], ms[keep]
    # every row of a forgotten user older than their tombstone, the file's included
    erase = np.zeros(raw.users.size, dtype=bool)
    for user, at in forgotten.items():
        erase |= (raw.users == user) & (raw.timestamps * 1000 <= at)
    base_users = np.unique(raw.users[~erase])
    event_users = np.unique(users)
    report: dict[str, Any] = {
        "events": int(users.size),
        "users": int(event_users.size),
        "new_users": int(np.setdiff1d(event_users, base_users).size),
        "forgotten_users": len(forgotten),
        "ratings_forgotten": int(erase.sum()),
        "dropped": dropped,
    }
    if users.size == 0 and not erase.any():
        return Merged(raw, report)
    merged = dataclasses.replace(
        raw,
        users=np.concatenate([raw.users[~erase], users.astype(raw.users.dtype)]),
        items=np.concatenate([raw.items[~erase], items.astype(raw.items.dtype)]),
        ratings=np.concatenate([raw.ratings[~erase], ratings]),
        timestamps=np.concatenate([raw.timestamps[~erase], (ms // 1000).astype(raw.timestamps.dtype)]),
        lines=np.concatenate([raw.lines[~erase], raw.total_rows + 1 + np.arange(users.size, dtype=raw.lines.dtype)]),
        total_rows=raw.total_rows + int(users.size),
    )
    return Merged(merged, report)
