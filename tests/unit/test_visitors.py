"""Visitors as training users: who is screened out, how much one visitor weighs, and their user ids."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.feedback import Like
from training import visitors
from training.datasets import RawRatings

pytestmark = pytest.mark.unit

KNOWN = np.arange(1, 1001)


def likes(visitor: str, movies: range | list[int], start: int = 1_700_000_000, every: int = 5) -> list[Like]:
    return [Like(visitor, m, start + n * every) for n, m in enumerate(movies)]


def test_a_person_passes_a_script_liking_faster_than_a_person_can_does_not() -> None:
    person = likes("person", range(1, 121), every=1)  # 60 in any minute: the limit
    script = likes("script", range(1, 62), every=0)  # 61 at once
    slow_script = likes("slow", range(1, 200), every=2)  # 30 a minute, over hours: a person's pace
    screened = visitors.screen(person + script + slow_script, KNOWN, like_cap=500)
    assert set(screened.likes) == {"person", "slow"} and screened.too_fast == ["script"]


def test_a_visitor_over_the_cap_is_dropped_whole_and_one_under_it_weighs_their_newest_likes() -> None:
    over = likes("over", range(1, 502))
    heavy = likes("heavy", range(1, 451))
    screened = visitors.screen(over + heavy + [Like("x", 99999, 0)], KNOWN, like_cap=500)
    assert screened.over_cap == ["over"] and screened.unknown_movies == 1
    kept = screened.likes["heavy"]
    assert len(kept) == visitors.MAX_TRAINING_LIKES and [x.movie_id for x in kept] == list(range(251, 451))
    assert screened.report()["dropped"]["likes_beyond_training_cap"] == 250
    assert screened.report()["likes"] == visitors.MAX_TRAINING_LIKES


def test_visitors_become_users_above_every_dataset_id_with_top_ratings() -> None:
    raw = RawRatings(users=np.array([3, 7]), items=np.array([1, 2]), ratings=np.array([4.0, 2.0], dtype=np.float32),
                     timestamps=np.array([10, 20]), lines=np.array([1, 2]), total_rows=2)  # fmt: skip
    screened = visitors.screen(likes("b", [2]) + likes("a", [1, 2]), KNOWN, like_cap=500)
    merged, first = visitors.add_to_ratings(raw, screened)
    assert first == 8
    assert merged.users.tolist() == [3, 7, 8, 8, 9] and merged.items.tolist() == [1, 2, 1, 2, 2]
    assert merged.ratings.tolist() == [4.0, 2.0, 5.0, 5.0, 5.0]
    assert merged.lines.tolist() == [1, 2, 3, 4, 5] and merged.total_rows == 5
    assert visitors.add_to_ratings(raw, visitors.screen([], KNOWN, 500)) == (raw, None)
