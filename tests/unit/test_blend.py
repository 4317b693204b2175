"""The served blend with known answers: LightFM and the item-item model, each alone and together.

Artifacts are built by hand where one part is neutral (all its scores equal: its z-score is zero)
and the other is not, so the right ranking is obvious; the item-item model itself is fitted on a
checkerboard by the training code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from recsys import scoring
from recsys.artifact import ModelArtifact
from tests.unit.test_artifact import tiny
from training import itemitem
from training.split import to_matrix

pytestmark = pytest.mark.unit


def with_item_item(
    model: ModelArtifact, rows: dict[int, dict[int, float]], shares: tuple[float, float],
    visitors: tuple[float, float] | None = None,
) -> Any:  # fmt: skip
    """`model` with item-item weights `rows` (liked item -> {item: weight}) and blend `shares`
    (for visitors too, unless `visitors` says otherwise)."""
    sources = np.array([i for i, row in rows.items() for _ in row], np.int64)
    targets = np.array([t for row in rows.values() for t in row], np.int64)
    values = np.array([w for row in rows.values() for w in row.values()], np.float32)
    b = itemitem.ItemItem.of(sources, targets, values, model.n_items)
    return dataclasses.replace(
        model, item_item_indptr=b.indptr, item_item_targets=b.targets.astype(np.int16),
        item_item_weights=b.weights, item_item_scales=b.scales, blend_shares=np.array(shares, np.float32),
        visitor_shares=np.array(visitors or shares, np.float32),
    )  # fmt: skip


NEUTRAL_ITEMS = np.zeros((4, 2), np.float32)  # LightFM scores all equal: its side says nothing


def test_only_the_item_item_side_supports_a_movie_it_comes_first() -> None:
    # GIVEN user 10 (liked item 0), LightFM neutral, and item 0 pointing strongly at item 3
    model = with_item_item(tiny(item_factors=NEUTRAL_ITEMS), {0: {3: 2.0, 2: 0.1}}, (0.5, 0.5))
    # WHEN recommending THEN item 3 leads, then item 2, and the liked item 0 never appears
    items, _ = model.recommend(0, 3)
    assert items.tolist()[:2] == [3, 2] and 0 not in items.tolist()


def test_only_the_lightfm_side_supports_a_movie_it_comes_first() -> None:
    # GIVEN user 10 whose vector points at items 0 and 1, and no item-item weight at all
    model = with_item_item(tiny(), {}, (0.5, 0.5))
    # WHEN recommending THEN item 1 (LightFM's best unseen) leads
    assert model.recommend(0, 3)[0].tolist()[0] == 1


def test_the_shares_decide_between_two_parts_that_disagree() -> None:
    # GIVEN LightFM favouring item 1 for user 10, and the item-item model favouring item 3
    rows = {0: {3: 5.0}}
    # WHEN LightFM has most of the blend THEN item 1 leads; WHEN the item-item model has THEN item 3
    assert with_item_item(tiny(), rows, (0.9, 0.1)).recommend(0, 1)[0].tolist() == [1]
    assert with_item_item(tiny(), rows, (0.1, 0.9)).recommend(0, 1)[0].tolist() == [3]


def test_visitors_are_blended_by_their_own_shares() -> None:
    # GIVEN item 0 pointing at item 3, LightFM (user 10's vector; a visitor liking item 0 folds in
    # towards item 1) favouring item 1, trained users served LightFM alone and visitors the
    # item-item model alone
    model = with_item_item(tiny(), {0: {3: 5.0}}, (1.0, 0.0), visitors=(0.0, 1.0))
    # WHEN user 10 (who liked item 0) and a visitor who likes item 0 are served
    trained, _ = model.recommend(0, 1)
    visitor, _ = model.recommend_for(np.array([0]), np.array([], np.int64), 1)
    # THEN the trained user gets LightFM's pick, the visitor the item-item model's
    assert trained.tolist() == [1] and visitor.tolist() == [3]


def test_a_seen_movie_is_never_returned_whatever_a_part_says() -> None:
    # GIVEN user 30, who rated item 3 low and liked nothing else, and weights that push item 3 hardest
    model = with_item_item(tiny(), {0: {3: 9.0}, 2: {3: 9.0}}, (0.1, 0.9))
    # WHEN a visitor who liked items 0 and 2 and disliked 3 is served THEN 3 is never among the picks
    items, _ = model.recommend_for(np.array([0, 2]), np.array([3]), 4)
    assert 3 not in items.tolist() and not {0, 2} & set(items.tolist())
    # and a trained user who rated item 3 (low) never gets it, from either part
    model = with_item_item(tiny(history_indptr=np.array([0, 1, 2, 3], np.int64),
                                history_items=np.array([0, 2, 0], np.int16),
                                history_ratings=np.array([10, 8, 10], np.uint8),
                                history_days=np.array([1, 2, 3], np.uint16)),
                           {0: {3: 9.0}}, (0.1, 0.9))  # fmt: skip
    assert 3 not in model.recommend(2, 4)[0].tolist()


def test_because_you_liked_names_the_liked_movie_whose_weight_put_the_pick_there() -> None:
    # GIVEN a visitor who liked items 0 and 2, and only item 2 pointing at item 3
    model = with_item_item(tiny(item_factors=NEUTRAL_ITEMS), {2: {3: 1.0}, 0: {1: 0.5}}, (0.5, 0.5))
    # WHEN their picks are explained THEN item 3 is there because of item 2, item 1 because of item 0
    items, _ = model.recommend_for(np.array([0, 2]), np.array([], np.int64), 2)
    reasons = dict(zip(items.tolist(), (r.tolist() for r in model.because_liked(np.array([0, 2]), items)), strict=True))
    assert reasons == {3: [2], 1: [0]}


@pytest.mark.parametrize("seed", range(20))
def test_because_you_liked_orders_each_picks_liked_movies_by_their_weight_into_it(seed: int) -> None:
    # GIVEN random weights between 4 movies (equal ones too: ties go to the lower liked movie)
    rng = np.random.default_rng(seed)
    rows = {i: {t: float(rng.choice([-1.0, 0.5, 1.0, 2.0])) for t in range(4) if t != i and rng.random() < 0.7}
            for i in range(4)}  # fmt: skip
    model = with_item_item(tiny(), rows, (0.5, 0.5))
    liked = np.sort(rng.choice(4, size=int(rng.integers(1, 4)), replace=False)).astype(np.int64)
    picks = np.array([i for i in range(4) if i not in liked.tolist()], np.int64)
    # WHEN the picks are explained
    reasons = model.because_liked(liked, picks, n=2)
    # THEN each names the liked movies with a positive weight into it, largest first, as stored
    for pick, reason in zip(picks.tolist(), reasons, strict=True):
        into = []
        for source in liked.tolist():
            start, stop = model.item_item_indptr[source], model.item_item_indptr[source + 1]
            for t, w in zip(model.item_item_targets[start:stop].tolist(), model.item_item_weights[start:stop].tolist(),
                            strict=True):  # fmt: skip
                if t == pick and w > 0:
                    into.append((-w, source))
        expected = [source for _, source in sorted(into)][:2]
        if into:
            assert reason.tolist() == expected
        else:  # LightFM's side placed it: the liked movies nearest by the item vectors
            assert set(reason.tolist()) <= set(liked.tolist()) and reason.size == min(2, liked.size)


def checkerboard(groups: int = 2, users: int = 12, items: int = 8) -> sp.csr_matrix:
    """Users of group g like every movie of group g except one (their own), nothing else."""
    rows, cols = [], []
    for u in range(groups * users):
        g = u // users
        for i in range(g * items, (g + 1) * items):
            if i != g * items + u % items:
                rows.append(u)
                cols.append(i)
    return to_matrix(np.array(rows), np.array(cols), (groups * users, groups * items))


@pytest.mark.parametrize("dense_max", [itemitem.DENSE_MAX_ITEMS, 0])  # EASE pruned, and the neighbourhoods
def test_a_visitors_likes_alone_rank_the_co_liked_movie_first(monkeypatch: pytest.MonkeyPatch, dense_max: int) -> None:
    # GIVEN the item-item model fitted on a checkerboard, by either method
    monkeypatch.setattr(itemitem, "DENSE_MAX_ITEMS", dense_max)
    model = itemitem.fit(checkerboard(), (10.0,))[10.0]
    # WHEN a visitor likes three movies of group 1, and LightFM has no vector for them (its side neutral)
    liked = np.array([8, 9, 10])
    scores = scoring.blend(np.zeros(16, np.float32), scoring.item_item_scores(
        model.indptr, model.targets, model.weights, model.scales, liked), np.array([0.5, 0.5], np.float32))  # fmt: skip
    scores[liked] = -np.inf
    # THEN the other movies of group 1, and only they, come first
    assert set(scoring.top_k(scores, 5).tolist()) == {11, 12, 13, 14, 15}


def test_the_share_is_the_one_leaning_least_on_lightfm_among_those_validation_cannot_tell_apart() -> None:
    # GIVEN validation curves: flat at the top (ML-100K's), a clear best, and one where LightFM wins
    flat = {"0": 0.1860, "0.4": 0.1868, "0.6": 0.1880, "0.7": 0.1876, "0.8": 0.1861, "0.9": 0.1794, "1": 0.1703}
    clear = {"0": 0.10, "0.4": 0.12, "0.6": 0.13, "0.7": 0.15, "0.8": 0.14, "0.9": 0.13, "1": 0.12}
    lightfm = {"0": 0.2796, "0.4": 0.2840, "0.6": 0.2895, "0.7": 0.2944, "0.8": 0.3018, "0.9": 0.3171, "1": 0.3176}
    # WHEN a share is picked THEN it is the smallest within 1% of the best
    assert itemitem.pick_share(flat) == 0.4 and itemitem.pick_share(clear) == 0.7
    assert itemitem.pick_share(lightfm) == 0.9


def test_a_gram_matrix_grown_by_more_likes_is_the_gram_matrix_of_all_of_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN likes split in two disjoint parts, as training's nested splits are, computed in blocks
    # of 7 movies (so the mirrored triangle spans several)
    monkeypatch.setattr(itemitem, "BLOCK", 7)
    rng = np.random.default_rng(5)
    likes = sp.csr_matrix((rng.random((300, 40)) < 0.2).astype(np.float32))
    first = sp.csr_matrix(likes.multiply(rng.random(likes.shape) < 0.7))
    more = likes - first
    # WHEN the first part's Gram matrix is grown by the rest
    grown = itemitem.grow_gram(itemitem.gram(first), first, more)
    # THEN it is exactly the Gram matrix of every like
    assert np.array_equal(grown, itemitem.gram(likes)) and grown.dtype == np.float32
    assert np.array_equal(grown, (likes.T @ likes).toarray())


def test_the_item_item_weights_keep_the_budget_and_never_point_at_themselves() -> None:
    x = checkerboard(items=8)
    model = itemitem.fit(x, (10.0,))[10.0]
    b = model.matrix()
    assert b.diagonal().tolist() == [0.0] * 16
    assert np.diff(model.indptr).max() <= itemitem.keep_per_item(16)
    assert model.weights.dtype == np.int16 and model.scales.shape == (16,)


def test_a_trained_users_item_item_side_reads_only_their_newest_likes() -> None:
    # GIVEN user 10 who liked item 2 (newest) then item 0, each pointing at another movie
    model = with_item_item(
        tiny(history_indptr=np.array([0, 2, 3, 3], np.int64), history_items=np.array([2, 0, 2], np.int16),
             history_ratings=np.array([10, 10, 8], np.uint8), history_days=np.array([9, 1, 5], np.uint16),
             item_factors=NEUTRAL_ITEMS),
        {2: {1: 1.0}, 0: {3: 5.0}}, (0.5, 0.5),
    )  # fmt: skip
    # WHEN every like counts THEN item 3 (the older like's, heavier) leads
    assert model.recommend(0, 1)[0].tolist() == [3]
    # WHEN only the newest like counts (the model carries one recency weight) THEN item 1 leads
    model = dataclasses.replace(model, item_item_recency=model.item_item_recency[:1])
    assert model.recommend(0, 1)[0].tolist() == [1]
    # and item 3 is never explained by the older like, whose weight no longer counts
    assert [r.tolist() for r in model.because(0, np.array([1, 3]))] == [[2], [2]]


def test_recent_likes_keeps_each_users_newest_as_the_history_orders_them() -> None:
    # GIVEN user 0's likes at times 5, 9, 9 (lines 0, 1, 2) and 1; user 1's one like
    users, items = np.array([0, 0, 0, 0, 1]), np.array([10, 11, 12, 13, 10])
    timestamps, order = np.array([5, 9, 9, 1, 3]), np.arange(5)
    # WHEN two are kept per user THEN user 0 keeps the two at time 9 (the later line first), user 1 its one
    kept = itemitem.recent_likes(users, items, timestamps, order, (2, 14), cap=2)
    assert kept[0].indices.tolist() == [11, 12] and kept[1].indices.tolist() == [10]
    assert itemitem.recent_likes(users, items, timestamps, order, (2, 14), cap=3)[0].indices.tolist() == [10, 11, 12]


def test_one_users_blend_is_the_same_as_in_a_batch() -> None:
    # GIVEN scores of three users, one with all scores equal WHEN blended one by one and as a batch
    rng = np.random.default_rng(7)
    shape = (3, 12_000)  # the size of a real catalogue, where a BLAS dot may split its sum
    lightfm, item_item = rng.normal(size=shape).astype(np.float32), rng.exponential(size=shape).astype(np.float32)
    item_item[1] = 0.0
    shares = np.array([0.7, 0.3], np.float32)
    batch = scoring.blend(lightfm, item_item, shares)
    # THEN every bit agrees: training evaluates exactly what serving computes
    for r in range(3):
        assert np.array_equal(scoring.blend(lightfm[r], item_item[r], shares), batch[r])
    assert np.array_equal(batch[1], np.float32(0.7) * scoring.standardize(lightfm[1]))


def test_standardized_scores_have_mean_zero_and_deviation_one_and_equal_scores_give_zeros() -> None:
    # GIVEN a catalogue's worth of scores, and as many equal ones (whose float32 sum is not exact)
    rng = np.random.default_rng(3)
    scores = (rng.normal(size=10_677) * 3 + 5).astype(np.float32)
    equal = np.full(10_677, 0.1, np.float32)
    # WHEN standardized THEN the first have mean 0 and deviation 1, the equal ones say nothing
    z = scoring.standardize(scores)
    assert abs(float(z.mean(dtype=np.float64))) < 1e-5 and abs(float(z.std(dtype=np.float64)) - 1) < 1e-5
    assert np.all(np.diff(z[np.argsort(scores)]) >= 0)  # never reordered
    assert not scoring.standardize(equal).any()
