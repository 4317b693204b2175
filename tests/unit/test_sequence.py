"""Known answers for the order-aware item-item model (SLIST): data where movie b always follows
movie a, and the rest of each sequence walks a chain of movies one step at a time."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys import scoring, service
from recsys.artifact import ModelArtifact, nearest_neighbours
from training import itemitem, sequence
from training.itemitem import ItemItem
from training.split import to_matrix

pytestmark = pytest.mark.unit

A, B = 0, 1  # b always comes right after a
CHAIN = np.arange(2, 20)  # the other movies, liked in this order (from any start, wrapping round)
N_ITEMS = 20


def sequences(users: int = 300, length: int = 8, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Each user's likes, oldest first: `length` consecutive movies of the chain, with a then b
    put in at a random place. Returns (users, items) grouped by user."""
    rng = np.random.default_rng(seed)
    user_rows, item_rows = [], []
    for u in range(users):
        start = int(rng.integers(CHAIN.size))
        walk = [int(CHAIN[(start + k) % CHAIN.size]) for k in range(length)]
        at = int(rng.integers(length + 1))
        liked = walk[:at] + [A, B] + walk[at:]
        user_rows += [u] * len(liked)
        item_rows += liked
    return np.array(user_rows), np.array(item_rows)


def fitted(a: float, decay: float | None, lam: float = 5.0, dense_max: int = itemitem.DENSE_MAX_ITEMS,
           monkeypatch: pytest.MonkeyPatch | None = None) -> ItemItem:  # fmt: skip
    """The item-item model of `sequences()` at (a, λ), served with recency `decay`."""
    if monkeypatch is not None:
        monkeypatch.setattr(itemitem, "DENSE_MAX_ITEMS", dense_max)
    users, items = sequences()
    g = itemitem.gram(to_matrix(users, items, (int(users.max()) + 1, N_ITEMS)))
    grams = sequence.grams(users, items, N_ITEMS, sequence.Transitions(decay=2.0, span=2, window=8, positions=50))
    return itemitem.fit_settings(g, grams, [(a, lam)])[a, lam]._replace(decay=decay)


def top(model: ItemItem, newest_first: list[int], k: int = 3) -> list[int]:
    """The item-item side's best `k` for likes given newest first, scored as serving scores them."""
    liked = np.array(newest_first)
    scores = scoring.item_item_scores(model.indptr, model.targets, model.weights, model.scales, liked,
                                      model.recency[: liked.size])  # fmt: skip
    scores[liked] = -np.inf
    return scoring.top_k(scores, k).tolist()


@pytest.mark.parametrize("dense_max", [itemitem.DENSE_MAX_ITEMS, 0])  # dense SLIST, and the neighbourhoods
def test_a_user_whose_newest_like_is_a_gets_b_first_and_one_who_liked_a_long_ago_does_not(
    monkeypatch: pytest.MonkeyPatch, dense_max: int
) -> None:
    # GIVEN the order-aware model fitted on sequences where b always follows a
    model = fitted(a=0.5, decay=2.0, dense_max=dense_max, monkeypatch=monkeypatch)
    # WHEN a user's newest like is a (after a walk along the chain)
    just_a = top(model, [A, 9, 8, 7, 6])
    # AND another user liked a long ago and walked the chain since (their newest is 12)
    long_ago = top(model, [12, 11, 10, 9, 8, 7, A])
    # THEN the first gets b first, the second the chain's next movie, 13, and not b
    assert just_a[0] == B
    assert long_ago[0] == 13 and B not in long_ago[:1]


def test_with_order_ignored_the_two_users_cannot_be_told_apart_by_recency() -> None:
    # GIVEN the same data, with no transitions and every like weighing the same (a = 1)
    model = fitted(a=1.0, decay=None)
    # WHEN the same two users are scored THEN the old like of a still ranks b as if it were new:
    # the known answer above is order's doing, not the data's
    assert top(model, [12, 11, 10, 9, 8, 7, A])[0] == B


def tiny_catalogue(model: ItemItem) -> ModelArtifact:
    """A 20-movie model whose LightFM side says nothing (all item vectors zero) and whose
    item-item side is `model`; one user, who liked nothing."""
    items = np.zeros((N_ITEMS, 2), np.float32)
    neighbours, sims = nearest_neighbours(np.eye(N_ITEMS, 2, dtype=np.float32))
    return ModelArtifact(
        user_ids=np.array([1], np.int32), item_ids=np.arange(100, 100 + N_ITEMS, dtype=np.int32),
        user_factors=np.zeros((1, 2), np.float32), user_biases=np.zeros(1, np.float32), item_factors=items,
        item_biases=np.zeros(N_ITEMS, np.float32), item_item_indptr=model.indptr,
        item_item_targets=model.targets.astype(np.int16), item_item_weights=model.weights,
        item_item_scales=model.scales, item_item_recency=model.recency,
        blend_shares=np.array([0.5, 0.5], np.float32), visitor_shares=np.array([0.5, 0.5], np.float32),
        neighbours=neighbours, neighbour_sims=sims, popularity=np.arange(N_ITEMS, dtype=np.int32),
        like_counts=np.ones(N_ITEMS, np.int32), history_indptr=np.array([0, 0], np.int64),
        history_items=np.zeros(0, np.int16), history_ratings=np.zeros(0, np.uint8),
        history_days=np.zeros(0, np.uint16), unliked_indptr=np.array([0, 0], np.int64),
        unliked_items=np.zeros(0, np.int16), fold_in_map=np.zeros((3, 2), np.float32), refold_weight=0.0,
        titles=tuple(f"M{i}" for i in range(N_ITEMS)), years=np.zeros(N_ITEMS, np.int16), genre_names=("Drama",),
        item_genres=np.ones(N_ITEMS, np.uint32), provenance={"version": "v1"},
    )  # fmt: skip


def test_a_visitors_order_changes_the_picks_the_same_way_and_names_the_like_that_placed_them() -> None:
    # GIVEN the served model of the sequences, LightFM's side silent
    served = tiny_catalogue(fitted(a=0.5, decay=2.0))
    movie = lambda i: 100 + i  # noqa: E731 - ids of item indices
    # WHEN a visitor sends the same likes in two orders (the last in the list is the newest)
    a_last = service.recommendations_for(served, [movie(i) for i in (6, 7, 8, 9, A)], [], 3, None, True)
    a_first = service.recommendations_for(served, [movie(i) for i in (A, 7, 8, 9, 10, 11, 12)], [], 3, None, True)
    # THEN liking a last puts b first, and says a placed it; liking it first puts the chain's next first
    assert a_last["items"][0]["movie_id"] == movie(B)
    assert a_last["items"][0]["because_you_liked"][0]["movie_id"] == movie(A)
    assert a_first["items"][0]["movie_id"] == movie(13)
    assert a_first["items"][0]["because_you_liked"][0]["movie_id"] == movie(12)
    # and no liked movie is ever returned, in either order
    for answer, liked in ((a_last, (6, 7, 8, 9, A)), (a_first, (A, 7, 8, 9, 10, 11, 12))):
        assert not {m["movie_id"] for m in answer["items"]} & {movie(i) for i in liked}
    # and the answer lists the likes oldest first, as they were given
    assert a_last["liked"] == [movie(i) for i in (6, 7, 8, 9, A)]


def test_a_repeated_like_counts_once_where_it_was_last() -> None:
    served = tiny_catalogue(fitted(a=0.5, decay=2.0))
    # GIVEN a visitor who liked a, then the chain, then a again (the list's last)
    answer = service.recommendations_for(served, [100 + A, 109, 110, 100 + A], [], 1, None, False)
    # THEN a counts as their newest like: b first; and a is listed once, where it was last
    assert answer["items"][0]["movie_id"] == 100 + B and answer["liked"] == [109, 110, 100 + A]


@pytest.mark.parametrize("how", [sequence.Transitions(decay=3.0, span=3, window=5, positions=4),
                                 sequence.Transitions(decay=5.0, span=10, window=8, positions=50),
                                 sequence.Transitions(decay=5.0, span=10, window=8)])  # fmt: skip
def test_the_gram_matrices_summed_from_pairs_of_likes_are_the_products_of_s_and_t(
    how: sequence.Transitions,
) -> None:
    # GIVEN users with 1 to 30 likes (shorter and longer than the window, the span and the cap)
    rng = np.random.default_rng(11)
    lengths = rng.integers(1, 31, size=60)
    users = np.repeat(np.arange(60), lengths)
    items = np.concatenate([rng.choice(N_ITEMS, size=min(n, N_ITEMS), replace=False) for n in lengths])
    users = np.repeat(np.arange(60), np.minimum(lengths, N_ITEMS))
    # WHEN SᵀS and SᵀT are summed from pairs, and S and T are built whole
    ss, st = sequence.grams(users, items, N_ITEMS, how)
    s, t = sequence.matrices(users, items, N_ITEMS, how)
    # THEN they agree; each S row is a unit-length decayed prefix; a user's newest `positions` count
    assert np.allclose(ss, (s.T @ s).toarray(), atol=1e-5) and np.allclose(st, (s.T @ t).toarray(), atol=1e-5)
    assert np.allclose(sp.linalg.norm(s, axis=1), 1.0)
    cap = lengths.max() if how.positions is None else how.positions  # None: every transition
    assert s.shape[0] == int(np.minimum(np.minimum(lengths, N_ITEMS) - 1, cap).sum())
    # and taking some users' part back out leaves those of the others
    mine = users >= 20
    sequence.add(ss, st, users[~mine], items[~mine], how, -1.0)
    others = sequence.grams(users[mine], items[mine], N_ITEMS, how)
    assert np.allclose(ss, others[0], atol=1e-4) and np.allclose(st, others[1], atol=1e-4)


def test_recency_weighs_the_newest_like_most_and_none_weighs_all_alike() -> None:
    weights = sequence.recency(20.0)
    assert weights[0] == 1.0 and np.all(np.diff(weights) < 0) and weights.dtype == np.float32
    assert np.array_equal(sequence.recency(None), np.ones_like(weights))
    with pytest.raises(ValueError, match="positive"):
        sequence.recency(0.0)


@pytest.mark.parametrize("shuffled", [False, True])
def test_each_users_likes_are_ordered_by_time_then_line_whichever_way_the_rows_come(shuffled: bool) -> None:
    # GIVEN rows of many users with tied times (and negative ones), in file order or not
    rng = np.random.default_rng(5)
    n = 5_000
    users = rng.integers(0, 300, size=n).astype(np.int32)
    timestamps = rng.integers(-50, 50, size=n).astype(np.int64)
    order = rng.permutation(n) if shuffled else np.arange(n)
    # WHEN they are put in each user's order of liking
    ordered = sequence.chronological(users, timestamps, order)
    # THEN it is the order of (user, time, line), ties of both broken by the line
    assert np.array_equal(ordered, np.lexsort((order, timestamps, users)))


def test_with_every_like_weighing_one_the_served_sum_skips_the_multiply_and_gives_the_same_scores() -> None:
    # GIVEN the served model of the sequences with no recency decay (every like weighs 1)
    model = fitted(a=0.5, decay=None)
    served = tiny_catalogue(model)
    newest = np.array([A, 12, 11, 10], dtype=np.int64)
    # WHEN its item-item side scores a user's newest likes
    scores = served.item_item_scores(newest, served.blend_shares)
    # THEN they are, to the bit, the sum with each row times its weight of 1
    weighted = scoring.item_item_scores(model.indptr, model.targets, model.weights, model.scales, newest,
                                        np.ones(newest.size, np.float32))  # fmt: skip
    assert np.array_equal(scores, weighted) and np.any(scores != 0)
    # and a decaying model's sum is weighted: its older likes count less than they would at 1
    decaying = tiny_catalogue(model._replace(decay=2.0))
    assert not np.allclose(decaying.item_item_scores(newest, decaying.blend_shares), scores)


@pytest.mark.parametrize("dense_max", [itemitem.DENSE_MAX_ITEMS, 0])  # B multiplied dense, and sparse
def test_the_decay_is_chosen_with_a_and_lambda_and_every_pair_is_reported(
    monkeypatch: pytest.MonkeyPatch, dense_max: int
) -> None:
    # GIVEN users' sequences, each with its newest like held out (the next like: b after a, else
    # the chain's next movie), and the model with order ignored and the order-aware one
    users, items = sequences()
    last = np.r_[users[1:] != users[:-1], True]
    shape = (int(users.max()) + 1, N_ITEMS)
    likes = itemitem.newest_likes(users[~last], items[~last], shape)
    seen, held_out = to_matrix(users[~last], items[~last], shape), to_matrix(users[last], items[last], shape)
    models = {(a, 5.0): fitted(a, None) for a in (1.0, 0.5)}
    decays = (None, 1.0, 50.0)
    monkeypatch.setattr(itemitem, "DENSE_MAX_ITEMS", dense_max)  # the same models, scored either way
    # WHEN the pair of (a, λ) and recency decay is chosen on the held-out likes
    setting, decay, grid = itemitem.choose_setting(
        models, lambda recency: itemitem.weighted(likes, recency), decays, seen, held_out, None
    )
    # THEN every pair was scored, and the chosen one is the best of them all
    assert set(grid) == {itemitem.label(*key) for key in models}
    assert all(set(row) == {itemitem.decay_label(d) for d in decays} for row in grid.values())
    best = max(max(row.values()) for row in grid.values())
    assert grid[itemitem.label(*setting)][itemitem.decay_label(decay)] == best
    # and it is the known answer: the next like follows the newest one, so a short memory finds it
    # every time, and the model with order ignored and every like weighing one does not
    assert decay == 1.0 and grid[itemitem.label(*setting)]["1.0"] == 1.0 > grid["a=1 λ=5"]["none"]
    # and the decay chooser scores only what the joint choice left out, to the same figures
    again, decay_grid = itemitem.choose_decay(
        models[setting], lambda recency: itemitem.weighted(likes, recency), decays, seen, held_out, None,
        known=grid[itemitem.label(*setting)],
    )
    assert again == decay and decay_grid == grid[itemitem.label(*setting)]
