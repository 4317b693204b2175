from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from devstack.template import model_parts
from recsys import scoring, service
from recsys.artifact import ModelArtifact, genre_neighbours, nearest_neighbours, similar_to
from recsys.events import Event, Recent
from recsys.parts import PARTS
from training.model import fold_in_projection

pytestmark = pytest.mark.unit

FUNCTION_PARTS = model_parts()


def tiny(**changes: object) -> ModelArtifact:
    """3 users, 4 items in 2 dimensions; item 0 and 1 point the same way, 2 and 3 the other.

    User 10 liked item 0, user 20 liked item 2, user 30 liked nothing and rated item 3 low. The
    item-item model has no weights and no share: the personalized scores rank as LightFM's.
    """
    items = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    users = np.array([[1, 0], [0, 1], [0.5, 0.5]], dtype=np.float32)
    unit = (items / np.linalg.norm(items, axis=1, keepdims=True)).astype(np.float32)
    neighbours, neighbour_sims = nearest_neighbours(unit)
    fields: dict[str, object] = dict(
        user_ids=np.array([10, 20, 30], dtype=np.int32), item_ids=np.array([100, 200, 300, 400], dtype=np.int32),
        user_factors=users, user_biases=np.zeros(3, np.float32), item_factors=items,
        item_biases=np.zeros(4, np.float32), neighbours=neighbours, neighbour_sims=neighbour_sims,
        item_item_indptr=np.zeros(5, np.int64), item_item_targets=np.zeros(0, np.int16),
        item_item_weights=np.zeros(0, np.int16), item_item_scales=np.zeros(4, np.float32),
            item_item_recency=np.ones(256, np.float32),
        blend_shares=np.array([1, 0], np.float32), visitor_shares=np.array([1, 0], np.float32),
        popularity=np.array([2, 0, 1, 3], np.int32), like_counts=np.array([5, 3, 9, 1], np.int32),
        history_indptr=np.array([0, 1, 2, 2], np.int64), history_items=np.array([0, 2], np.int16),
        history_ratings=np.array([10, 8], np.uint8), history_days=np.array([10000, 10001], np.uint16),
        unliked_indptr=np.array([0, 0, 0, 1], np.int64), unliked_items=np.array([3], np.int16),
        fold_in_map=np.array([[1, 0], [0, 1], [0, 0]], np.float32),
        refold_weight=0.0,
        titles=("A", "B", "C", "D"), years=np.array([1990, 0, 2000, 1995], np.int16),
        genre_names=("Action", "Comedy"), item_genres=np.array([1, 1, 2, 3], np.uint32),
        provenance={"version": "v1"},
    )  # fmt: skip
    fields.update(changes)
    return ModelArtifact(**fields)  # type: ignore[arg-type]


def test_recommend_masks_liked_and_returns_catalogue_indices() -> None:
    # GIVEN user 10 who liked item 0 WHEN recommending THEN item 1 (same direction) leads, item 0 never appears
    items, scores = tiny().recommend(0, 4)
    assert items.tolist()[0] == 1
    assert 0 not in items.tolist()
    assert np.all(np.diff(scores) <= 0)


def test_recommend_genre_filter_keeps_only_that_genre() -> None:
    model = tiny()
    items, _ = model.recommend(0, 4, model.genre_bit("comedy"))
    assert sorted(items.tolist()) == [2, 3]


def test_similar_excludes_the_movie_itself() -> None:
    items, sims = tiny().similar(0, 3)
    assert items.tolist()[0] == 1 and 0 not in items.tolist()
    assert sims[0] == pytest.approx(0.9 / np.hypot(0.9, 0.1), rel=1e-5)


def test_lookup_unknown_and_out_of_range_ids_is_none() -> None:
    model = tiny()
    assert model.user_index(20) == 1
    assert model.user_index(21) is None
    assert model.user_index(10**30) is None


def test_validate_names_the_inconsistent_field() -> None:
    with pytest.raises(ValueError, match="item_biases"):
        tiny(item_biases=np.zeros(3, np.float32)).validate()


def test_because_picks_the_most_similar_liked_items() -> None:
    model = tiny()
    (reasons,) = model.because(2, np.array([1]))  # user 30 liked nothing
    assert reasons.size == 0
    (reasons,) = model.because(0, np.array([1]))
    assert reasons.tolist() == [0]


def test_neighbour_table_ranks_exactly_as_the_full_computation() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors[7] = vectors[8]  # a tie
    unit = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    table, sims = nearest_neighbours(unit, m=20)
    for i in range(300):
        items, values = similar_to(unit, i, 20)
        assert table[i].tolist() == items.tolist() and np.array_equal(sims[i], values)


def test_similar_beyond_the_table_falls_back_to_the_full_computation() -> None:
    model = tiny()
    assert model.neighbours.shape == (4, 3)
    items, _ = model.similar(0, 3)
    assert items.tolist()[0] == 1 and 0 not in items.tolist()
    small = tiny(neighbours=model.neighbours[:, :1], neighbour_sims=model.neighbour_sims[:, :1])
    assert small.similar(0, 3)[0].tolist() == items.tolist()


def test_recommend_never_returns_a_movie_rated_low_even_when_it_would_rank_first() -> None:
    # GIVEN user 10, who liked item 0 and rated item 1 (which points the same way) with one star
    model = tiny(unliked_indptr=np.array([0, 1, 1, 1], np.int64), unliked_items=np.array([1], np.int16))
    assert int(np.argsort(-model.score_user(0))[1]) == 1  # without the mask it would come right after item 0
    # WHEN recommending THEN neither seen item appears
    items, _ = model.recommend(0, 4)
    assert 0 not in items.tolist() and 1 not in items.tolist()
    assert sorted(model.seen(0).tolist()) == [0, 1]


def test_similar_pads_short_rows_and_never_returns_padding() -> None:
    model = tiny()
    sims = model.neighbour_sims.copy()
    sims[0, 1:] = -np.inf  # item 0 has a single eligible neighbour
    items, values = tiny(neighbour_sims=sims).similar(0, 3)
    assert items.tolist() == [1] and np.isfinite(values).all()


def test_nearest_neighbours_lists_only_eligible_items() -> None:
    unit = tiny().item_unit
    eligible = np.array([True, False, True, True])
    table, sims = nearest_neighbours(unit, eligible=eligible)
    assert 1 not in table[sims > -np.inf].tolist()
    assert table[0].tolist()[:2] == [3, 2]  # item 1 would be first; it is skipped


def test_genre_neighbours_share_genres_and_skip_ineligible_items() -> None:
    # GIVEN items with genres {A}, {A}, {B}, {A, B}; item 1 is never liked
    genres = np.array([1, 1, 2, 3], np.uint32)
    eligible = np.array([True, False, True, True])
    table, sims = genre_neighbours(genres, np.array([2, 0, 1, 3]), eligible, np.array([1]), 3)
    # THEN item 1's neighbours are item 0 (same genres, Jaccard 1), then item 3 (1/2); item 2 shares none
    assert table[0, :2].tolist() == [0, 3] and sims[0, :2].tolist() == [1.0, 0.5] and sims[0, 2] == -np.inf


def test_fold_in_with_the_identity_map_is_the_mean_of_the_liked_vectors() -> None:
    model = tiny()
    vector = scoring.fold_in(model.item_factors, np.array([0, 2]), model.fold_in_map)
    np.testing.assert_allclose(vector, [0.5, 0.5])


def test_recommend_for_a_visitor_never_returns_liked_or_excluded_items() -> None:
    # GIVEN a visitor who likes item 2 and excludes item 3 (both point "up")
    items, scores = tiny().recommend_for(np.array([2]), np.array([3]), 4)
    # THEN the remaining items come back, none of those two
    assert set(items.tolist()) == {0, 1} and np.all(np.diff(scores) <= 0)


def test_fold_in_projection_recovers_a_linear_map() -> None:
    # GIVEN users whose vectors are exactly A · (mean of their liked item vectors) + c
    rng = np.random.default_rng(0)
    items = rng.normal(size=(40, 4)).astype(np.float32)
    likes = sp.random(300, 40, density=0.2, format="csr", random_state=1, dtype=np.float32)
    likes.data[:] = 1.0
    counts = np.maximum(np.diff(likes.indptr), 1)[:, None]
    a, c = rng.normal(size=(4, 4)), rng.normal(size=4)
    users = ((likes @ items) / counts @ a + c).astype(np.float32)
    # WHEN the ridge map is fitted with a tiny lambda THEN folding in reproduces each user's vector
    w = fold_in_projection(items, users, likes, 1e-6)
    u = int(np.flatnonzero(np.diff(likes.indptr) > 0)[0])
    liked = likes.indices[likes.indptr[u] : likes.indptr[u + 1]]
    np.testing.assert_allclose(scoring.fold_in(items, liked, w), users[u], atol=1e-3)


def test_parts_reassemble_the_whole_model() -> None:
    model = tiny()
    whole = ModelArtifact.from_parts({name: model.part(name) for name in PARTS})
    assert whole.parts == tuple(PARTS)
    assert whole.recommend(0, 3)[0].tolist() == model.recommend(0, 3)[0].tolist()
    assert whole.similar(0, 2)[0].tolist() == model.similar(0, 2)[0].tolist()


@pytest.mark.parametrize("function", sorted(FUNCTION_PARTS))
def test_a_functions_parts_hold_only_its_fields(function: str) -> None:
    model = tiny()
    some = ModelArtifact.from_parts({name: model.part(name) for name in FUNCTION_PARTS[function]})
    held = {field for name in FUNCTION_PARTS[function] for field in PARTS[name]}
    assert set(vars(some)) == held
    assert some.n_items == model.n_items


@pytest.mark.parametrize(("parts", "message"), [
    (lambda m: {"catalog": m.part("catalog"), "extra": {}}, "unknown part"),
    (lambda m: {"item_vectors": m.part("item_vectors")}, "no catalog"),
    (lambda m: {"catalog": {**m.part("catalog"), "x": 1}}, "part catalog: expected fields"),
    (lambda m: {"catalog": m.part("catalog"), "ratings": m.part("ratings")}, "needs the histories part"),
    (lambda m: {"catalog": m.part("catalog"), "histories": m.part("histories"),
                "user_vectors": {k: v[:-1] for k, v in m.part("user_vectors").items()}}, "user_factors: expected"),
    (lambda m: {"catalog": m.part("catalog"), "histories": m.part("histories"),
                "ratings": {k: v[:-1] for k, v in m.part("ratings").items()}}, "history_ratings: expected"),
])  # fmt: skip
def test_parts_that_do_not_fit_are_refused(parts: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelArtifact.from_parts(parts(tiny()))


@pytest.mark.parametrize(
    "popularity", [[9, 0, 1, 3], [0, 0, 1, 3], [-1, 1, 2, 3]], ids=["out of range", "repeated", "negative"]
)
def test_validate_refuses_a_popularity_that_is_not_a_ranking(popularity: list[int]) -> None:
    # GIVEN a catalog whose popularity is not every item index once (each would fail requests later)
    model = tiny()
    catalog = {**model.part("catalog"), "popularity": np.array(popularity, np.int32)}
    # WHEN it is assembled THEN it is refused, naming the field
    with pytest.raises(ValueError, match="popularity"):
        ModelArtifact.from_parts({"catalog": catalog})


@pytest.mark.parametrize("cap", [1, 128, 256])
def test_the_item_item_side_reads_as_many_newest_likes_as_the_model_has_recency_weights(cap: int) -> None:
    # GIVEN a model whose recency weights are `cap` long (a model of an earlier release carries 256)
    # and a user with more likes than that, newest first
    likes = 300
    model = tiny(
        item_ids=np.arange(1, 401, dtype=np.int32), item_factors=np.zeros((400, 2), np.float32),
        item_biases=np.zeros(400, np.float32), item_item_indptr=np.zeros(401, np.int64),
        item_item_scales=np.zeros(400, np.float32), item_item_recency=np.ones(cap, np.float32),
        history_indptr=np.array([0, likes, likes, likes], np.int64),
        history_items=np.arange(likes, dtype=np.int16), history_ratings=np.full(likes, 10, np.uint8),
        history_days=np.zeros(likes, np.uint16), unliked_indptr=np.zeros(4, np.int64),
        unliked_items=np.zeros(0, np.int16),
    )  # fmt: skip
    # THEN its item-item side reads the newest `cap` of them, as training evaluated it
    assert model.item_item_cap == cap and model.newest_likes(0).tolist() == list(range(cap))


@pytest.mark.parametrize("cap", [0, 1025])
def test_a_model_with_no_recency_weight_or_too_many_is_refused(cap: int) -> None:
    with pytest.raises(ValueError, match="item_item_recency"):
        tiny(item_item_recency=np.ones(cap, np.float32)).validate()


def test_a_known_users_new_likes_refold_their_lightfm_vector_by_the_models_weight() -> None:
    # GIVEN user 10 (trained (1, 0), liked item 0) whose new like is item 2, and the identity map
    likes, acted = np.array([2]), np.array([2])
    # WHEN the model keeps the trained vector THEN the scores are the trained user's
    np.testing.assert_allclose(tiny().live_scores(0, likes, acted), tiny().score_user(0))
    # WHEN it refolds fully THEN the vector is the mean of items 0 and 2, (0.5, 0.5)
    refolded = tiny(refold_weight=1.0).live_scores(0, likes, acted)
    np.testing.assert_allclose(refolded, tiny().item_factors @ np.array([0.5, 0.5]), rtol=1e-6)
    # and half way, it is half of each: the recommendation turns to item 3 either way once 0 and 2 are seen
    half = tiny(refold_weight=0.5).live_scores(0, likes, acted)
    np.testing.assert_allclose(half, tiny().item_factors @ np.array([0.75, 0.25]), rtol=1e-6)
    # WHEN an event unlikes the trained like THEN only the new like is folded in
    only_new = tiny(refold_weight=1.0).live_scores(0, likes, np.array([2, 0]))
    np.testing.assert_allclose(only_new, tiny().item_factors @ np.array([0.0, 1.0]), rtol=1e-6)
    # WHEN there is no new like THEN the trained vector stands whatever the weight
    np.testing.assert_allclose(tiny(refold_weight=1.0).live_scores(0, np.array([], np.int64), acted),
                               tiny().score_user(0))  # fmt: skip


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan")])
def test_a_refold_weight_outside_0_to_1_is_refused(weight: float) -> None:
    # GIVEN item vectors whose refold weight is no weight WHEN they are assembled THEN they are refused, named
    model = tiny()
    vectors = {**model.part("item_vectors"), "refold_weight": weight}
    with pytest.raises(ValueError, match="refold_weight: expected a weight"):
        ModelArtifact.from_parts({"catalog": model.part("catalog"), "item_vectors": vectors})


class OneUsersEvents:
    """An `EventReader` that holds one user's events."""

    def __init__(self, user_id: int, *events: Event) -> None:
        self.user_id, self.events = user_id, events

    def recent(self, user_id: int) -> Recent:
        return Recent(self.events if user_id == self.user_id else ())


def test_a_user_with_no_trained_like_served_from_new_likes_never_gets_what_they_rated_low() -> None:
    # GIVEN user 30, who liked nothing in training and rated item 3 low (id 400); item 3 points the
    # way their new like of item 2 (id 300) does, so it would come first
    model = tiny(visitor_shares=np.array([1, 0], np.float32))
    log = OneUsersEvents(30, Event(300, "like", 1))
    # WHEN they are recommended everything
    answer = service.recommendations(model, 30, 3, "personalized", None, False, log)
    # THEN it is personalized from the new like, and neither the like nor the low rating is in it
    assert answer["model"] == "personalized" and answer["realtime"] is True
    assert {i["movie_id"] for i in answer["items"]} == {100, 200}
