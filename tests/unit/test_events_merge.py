"""The site's users' events merged into the ratings (`training.events`): each becomes that user's own
rating and the latest of an event and the file wins; a new id is a new user; a forgotten user
leaves nothing older than their tombstone; events pass the rules any rating does."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.events import TOMBSTONE, Event
from training.cleaning import clean
from training.datasets import RawRatings
from training.events import merge

pytestmark = pytest.mark.unit

T = 1_700_000_000  # the file's ratings are made at T + n seconds


def raw_ratings(rows: list[tuple[int, int, float]]) -> RawRatings:
    users, items, ratings = (np.array(c) for c in zip(*rows, strict=True))
    n = len(rows)
    return RawRatings(users.astype(np.int64), items.astype(np.int64), ratings.astype(np.float32),
                      T + np.arange(n, dtype=np.int64), np.arange(1, n + 1, dtype=np.int64), n)  # fmt: skip


BASE = raw_ratings([(1, 10, 5), (1, 11, 4), (1, 12, 1), (2, 10, 3), (2, 11, 5), (3, 12, 2), (3, 13, 4)])


def final(raw: RawRatings) -> dict[tuple[int, int], float]:
    """Each (user, movie)'s rating after cleaning (the latest wins)."""
    data = clean(raw, 4.0, 0.5)
    return {(int(data.user_ids[u]), int(data.item_ids[i])): float(r)
            for u, i, r in zip(data.users, data.items, data.ratings, strict=True)}  # fmt: skip


def ms(seconds: int) -> int:
    return seconds * 1000


def test_an_event_is_the_users_own_rating_and_the_latest_wins() -> None:
    events = [
        (1, Event(10, "unlike", ms(T + 100))),  # a liked movie, unliked since: the scale's bottom
        (1, Event(13, "like", ms(T + 100))),  # a new like: the scale's top
        (2, Event(10, "rating", ms(T + 100), 4.0)),  # a new rating replaces the file's 3
        (2, Event(11, "rating", ms(T - 100), 1.0)),  # older than the file's 5: the file wins
    ]
    merged = merge(BASE, events)
    ratings = final(merged.raw)
    assert ratings[(1, 10)] == 1.0 and ratings[(1, 13)] == 5.0 and ratings[(2, 10)] == 4.0 and ratings[(2, 11)] == 5.0
    assert ratings[(1, 11)] == 4.0  # nothing said about it: as in the file
    assert merged.report["events"] == 4 and merged.report["new_users"] == 0


def test_an_id_the_file_lacks_is_a_new_user() -> None:
    merged = merge(BASE, [(77, Event(10, "like", ms(T + 5))), (77, Event(11, "like", ms(T + 6)))])
    assert {k for k in final(merged.raw) if k[0] == 77} == {(77, 10), (77, 11)}
    assert merged.report["new_users"] == 1 and merged.report["users"] == 1


def test_a_forgotten_user_leaves_nothing_older_than_the_tombstone() -> None:
    events = [
        (1, Event(TOMBSTONE, "forget", ms(T + 50))),
        (1, Event(13, "like", ms(T + 40))),  # raced the forget's deletes: older, left out
        (1, Event(12, "like", ms(T + 60))),  # after it: a new start
    ]
    merged = merge(BASE, events)
    assert {k: v for k, v in final(merged.raw).items() if k[0] == 1} == {(1, 12): 5.0}
    assert merged.report["ratings_forgotten"] == 3 and merged.report["dropped"]["before_forget"] == 1
    assert merged.report["forgotten_users"] == 1
    assert {k for k in final(merged.raw) if k[0] != 1} == {k for k in final(BASE) if k[0] != 1}  # others untouched


def test_events_pass_the_rules_any_rating_does() -> None:
    events = [(1, Event(99, "like", ms(T + 5))), (1, Event(10, "rating", ms(T + 5), 3.5))]  # no such movie; off scale
    merged = merge(BASE, events)
    assert merged.report["dropped"] == {"unknown_movie": 1, "off_scale": 1, "before_forget": 0}
    assert final(merged.raw) == final(BASE)


def test_no_events_change_nothing() -> None:
    merged = merge(BASE, [])
    assert merged.raw is BASE and merged.report["events"] == 0
