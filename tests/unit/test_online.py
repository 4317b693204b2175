"""Online quality: like-through per model version and list, its interval, and who counts
(`training.online`), on tallies whose answers can be worked out by hand."""

from __future__ import annotations

import math

import pytest

from recsys.feedback import SHOWN, TOMBSTONE, Like, Source
from training import online

pytestmark = pytest.mark.unit

OLD, NEW = "20261204T031500Z-aaaaaaaa", "20261205T031500Z-bbbbbbbb"


def shown(visitor: str, counts: dict[tuple[str, str], int]) -> Like:
    return Like(visitor, SHOWN, 0, shown=counts)


def liked(visitor: str, movie: int, version: str, kind: str = "taste", position: int = 1) -> Like:
    return Like(visitor, movie, 1_790_000_000 + movie, Source(kind, version, position))


def tally(scan: list[Like], dropped: tuple[str, ...] = ()) -> tuple[list[Like], dict]:
    t = online.Tally()
    passed = list(t.watch(scan))
    return passed, t.report(dropped)


def test_the_rate_is_liked_picks_over_picks_shown_per_version_and_list_newest_first() -> None:
    # GIVEN two visitors shown picks of two versions, and likes of some of them
    scan = [
        shown("a", {(NEW, "taste"): 10, (NEW, "similar"): 20, (OLD, "taste"): 30}),
        liked("a", 1, NEW), liked("a", 2, NEW, "similar"), liked("a", 3, OLD),
        shown("b", {(NEW, "taste"): 30}),
        liked("b", 4, NEW), liked("b", 5, NEW), liked("b", 6, NEW, position=7),
        Like("b", 9, 1_790_000_000),  # a like of no pick: no version's
    ]
    passed, report = tally(scan)
    # THEN the likes pass on to screening, the counts of shown picks do not
    assert [x.movie_id for x in passed] == [1, 2, 3, 4, 5, 6, 9]
    new, old = report["versions"]
    assert (new["model_version"], old["model_version"]) == (NEW, OLD)
    assert (new["picks"], new["liked"], new["visitors"]) == (60, 5, 2)
    assert new["lists"]["taste"]["picks"] == 40 and new["lists"]["taste"]["liked"] == 4
    assert new["lists"]["similar"]["like_through"] == pytest.approx(1 / 20)
    assert (old["picks"], old["liked"], old["like_through"]) == (30, 1, pytest.approx(1 / 30, abs=1e-6))


def test_the_interval_is_the_ratio_estimators_clustered_by_visitor() -> None:
    # GIVEN three visitors: (picks, liked) = (10, 1), (20, 4), (30, 1)
    scan = [shown(v, {(NEW, "taste"): n}) for v, n in (("a", 10), ("b", 20), ("c", 30))]
    scan += [liked("a", 1, NEW)] + [liked("b", m, NEW) for m in (2, 3, 4, 5)] + [liked("c", 6, NEW)]
    (row,) = tally(scan)[1]["versions"]
    # THEN r = 6/60, and se² = m/(m-1) · Σ(l − r·n)² / N²
    r = 6 / 60
    se = math.sqrt(3 / 2 * ((1 - r * 10) ** 2 + (4 - r * 20) ** 2 + (1 - r * 30) ** 2)) / 60
    assert row["like_through"] == pytest.approx(r) and row["se"] == pytest.approx(se, abs=1e-6)
    assert row["ci95"] == pytest.approx([max(0, r - online.Z95 * se), r + online.Z95 * se], abs=1e-6)
    assert row["ci95"][0] == 0  # a rate is never below 0: the interval is cut there
    # and one visitor has no interval: nothing tells their luck from the model's
    (alone,) = tally(scan[:1] + [liked("a", 1, NEW)])[1]["versions"]
    assert alone["se"] is None and alone["ci95"] is None


def test_forgotten_and_screened_out_visitors_count_nothing_and_one_visitor_is_bounded() -> None:
    scan = [
        shown("person", {(NEW, "taste"): 100}), liked("person", 1, NEW),
        shown("gone", {(NEW, "taste"): 100}), liked("gone", 2, NEW), Like("gone", TOMBSTONE, 5),
        shown("script", {(NEW, "taste"): 100}), liked("script", 3, NEW),
        # a flood of shown picks with no like, and more liked picks than picks shown
        shown("flood", {(NEW, "taste"): 10**9}),
        shown("liar", {(NEW, "similar"): 1}), liked("liar", 4, NEW, "similar"), liked("liar", 5, NEW, "similar"),
    ]  # fmt: skip
    (row,) = tally(scan, dropped=("script",))[1]["versions"]
    taste, similar = row["lists"]["taste"], row["lists"]["similar"]
    assert taste["visitors"] == 2 and taste["picks"] == 100 + online.MAX_PICKS_PER_VISITOR and taste["liked"] == 1
    assert similar["picks"] == 1 and similar["liked"] == 1
    assert tally(scan, dropped=("script",))[1]["visitors_left_out"] == 2


@pytest.mark.parametrize(
    ("new_liked", "verdict"), [(40, "better"), (20, "within noise"), (5, "worse")]
)
def test_the_newest_version_is_compared_with_the_one_before_once_both_showed_enough(
    new_liked: int, verdict: str
) -> None:
    # GIVEN 20 visitors per version, each shown 20 picks: the older liked 1 in 20 overall
    scan: list[Like] = []
    movie = iter(range(1, 10**6))
    for n in range(20):
        v = f"v{n}"
        scan.append(shown(v, {(OLD, "taste"): 20, (NEW, "taste"): 20}))
        scan += [liked(v, next(movie), OLD)] if n < 20 else []
        scan += [liked(v, next(movie), NEW) for _ in range(new_liked // 20 + (n < new_liked % 20))]
    report = tally(scan)[1]
    change = report["change"]
    assert (change["newer"], change["older"]) == (NEW, OLD)
    assert change["ratio"] == pytest.approx((new_liked / 400) / (20 / 400))
    assert change["verdict"] == verdict
    # and a version below the minimum is shown but not compared
    few = [x for x in scan if x.movie_id != SHOWN] + [shown(f"v{n}", {(OLD, "taste"): 20, (NEW, "taste"): 5})
                                                     for n in range(20)]  # fmt: skip
    assert tally(few)[1]["change"] is None
