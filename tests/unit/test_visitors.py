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


DAY = 86400
NOW = 1_790_000_000


def test_a_thousand_ids_in_a_day_move_a_movie_nobody_liked_by_one_like_and_a_liked_one_by_a_quarter() -> None:
    # GIVEN movie 7 with no likes in the dataset, movie 8 with 40, and 1,000 fresh ids liking each
    # within one afternoon
    flood = [Like(f"id-{n}", m, NOW + n) for n in range(1000) for m in (7, 8)]
    movie_likes = np.zeros(KNOWN.size, dtype=np.int64)
    movie_likes[8 - 1] = 40
    # WHEN screened
    screened = visitors.screen(flood, KNOWN, like_cap=500, movie_likes=movie_likes)
    # THEN movie 7 gains one like (one day), movie 8 a quarter of its 40 plus one
    kept = [x.movie_id for theirs in screened.likes.values() for x in theirs]
    assert kept.count(7) == 1 and kept.count(8) == 10 + 1
    assert screened.over_movie_budget == 2000 - 12 and screened.movies_at_budget == 2


def test_an_honest_crowd_over_days_moves_a_movie_day_by_day_and_the_patient_fill_the_budget_first() -> None:
    # GIVEN 30 visitors liking movie 7 (no likes in the dataset) over 10 days, and 30 one-day ids
    crowd = [Like(f"person-{n}", 7, NOW + (n % 10) * DAY) for n in range(30)]
    crowd += [Like(f"person-{n}", 9, NOW + (n % 10) * DAY + (n % 3 + 1) * DAY) for n in range(30)]  # more days each
    fresh = [Like(f"fresh-{n}", 7, NOW - DAY + n) for n in range(30)]
    screened = visitors.screen(crowd + fresh, KNOWN, like_cap=500, movie_likes=np.zeros(KNOWN.size, dtype=np.int64))
    # THEN movie 7's budget is its 11 distinct days, filled by the visitors who came on two days
    liked_7 = sorted(v for v, theirs in screened.likes.items() for x in theirs if x.movie_id == 7)
    assert len(liked_7) == 11 and all(v.startswith("person-") for v in liked_7)


def test_a_forgotten_visitor_trains_nothing_whatever_the_scan_meets_first() -> None:
    from recsys.feedback import TOMBSTONE

    scan = likes("gone", [1, 2]) + [Like("gone", TOMBSTONE, NOW)] + likes("kept", [3])
    screened = visitors.screen(scan, KNOWN, like_cap=500)
    assert set(screened.likes) == {"kept"} and screened.report()["dropped"]["visitors_forgotten"] == 1


def test_the_scan_stops_at_its_budget_and_says_so() -> None:
    endless = (Like(f"id-{n}", 1 + n % 900, NOW) for n in range(10**9))
    screened = visitors.screen(endless, KNOWN, like_cap=500, max_read=5000)
    assert screened.read == 5000 and screened.report()["scan"]["cut"] is True
    assert visitors.screen(likes("a", [1]), KNOWN, 500).report()["scan"]["cut"] is False


def test_a_visitor_copying_a_user_trains_scored_fits_without_that_users_held_out_movies() -> None:
    # GIVEN users 0 and 1 (movies 0-5 and 6-9), each holding out their last two movies; visitor 2
    # copies user 0 (all six); visitor 3 likes one of user 0's movies and three of user 1's; visitor 4
    # likes two movies user 0 held out, nothing else; visitor 5 likes one held-out movie of each
    rows = [(0, m) for m in range(6)] + [(1, m) for m in range(6, 10)]
    rows += [(2, m) for m in range(6)] + [(3, m) for m in (0, 7, 8, 9)] + [(4, 4), (4, 5)] + [(5, 4), (5, 8)]
    users, items = (np.array(c) for c in zip(*rows, strict=True))
    visitor = users >= 2
    held_out = np.isin(np.arange(users.size), [4, 5, 8, 9])  # users 0 and 1's last two
    leaked = visitors.leaked_rows(users, items, visitor, held_out, (6, 10))
    # THEN the copy keeps user 0's training-side movies only; visitor 3 holds both of user 1's
    # held-out likes, so loses 8 and 9; visitor 4 is all of user 0's held-out likes
    assert {(int(u), int(i)) for u, i in zip(users[leaked], items[leaked], strict=True)} == {
        (2, 4), (2, 5), (3, 8), (3, 9), (4, 4), (4, 5)}  # fmt: skip
    # AND with nothing held out, or no visitor, nothing is left out
    # (visitor 5 holds one of each user's two: no one's half and two)
    assert not visitors.leaked_rows(users, items, visitor, np.zeros_like(held_out), (6, 10)).any()
    assert not visitors.leaked_rows(users, items, np.zeros_like(visitor), held_out, (6, 10)).any()
