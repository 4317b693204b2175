"""The replay of held-out likes (`training.replay`): real time against a profile frozen at training."""

from __future__ import annotations

import numpy as np

from training import itemitem, replay
from training.itemitem import ItemItem
from training.split import to_matrix

A, B, C, D = 0, 1, 2, 3  # b always follows a; d follows c
N_ITEMS = 6


def chain_model() -> ItemItem:
    """B[a, b] = B[c, d] = 1, nothing else; the newest like weighs most (decay 2)."""
    model = ItemItem.of(np.array([A, C]), np.array([B, D]), np.array([1.0, 1.0]), N_ITEMS)
    return model._replace(decay=2.0)


def silent(users: np.ndarray) -> np.ndarray:
    return np.zeros((users.size, N_ITEMS), dtype=np.float32)


def test_a_like_that_arrives_moves_its_follower_to_the_top_in_real_time_and_not_in_a_frozen_profile() -> None:
    # GIVEN a user who liked c on the training side, then likes a and b, in that order, held out
    newest = itemitem.newest_likes(np.array([0]), np.array([C]), (1, N_ITEMS))
    seen = to_matrix(np.array([0]), np.array([C]), (1, N_ITEMS))
    arrivals = (np.array([0, 0]), np.array([A, B]))
    # WHEN the two arrivals are replayed, top 1, with the item-item side alone
    out = replay.replay(silent, chain_model(), 0.0, newest, arrivals, seen, np.array([0]), k=1)
    # THEN frozen at training, d (c's follower) stays first, and neither arrival is ever first
    assert out["static"] == {"hr@1": 0.0, "ndcg@1": 0.0}
    # and in real time, once a has arrived, b is first: one hit of two
    assert out["realtime"] == {"hr@1": 0.5, "ndcg@1": 0.5}
    assert out["users"] == 1 and out["arrivals"] == 2


def test_seen_movies_and_earlier_arrivals_are_masked_and_ties_go_to_the_lower_index() -> None:
    # GIVEN a model that scores nothing, and a user who rated 0 and 1 (seen), then likes 4 and 2
    newest = itemitem.newest_likes(np.array([0]), np.array([0]), (1, N_ITEMS))
    seen = to_matrix(np.array([0, 0]), np.array([0, 1]), (1, N_ITEMS))
    empty = ItemItem.of(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), N_ITEMS)
    out = replay.replay(silent, empty, 0.0, newest, (np.array([0, 0]), np.array([4, 2])), seen, np.array([0]), k=2)
    # WHEN all scores tie, the ranking is 2, 3, 4, 5 (0 and 1 seen): 4 is third, a miss at k = 2;
    # once 4 has arrived it is masked too, and 2 is first: a hit with a gain of 1
    assert out["static"] == out["realtime"] == {"hr@2": 0.5, "ndcg@2": 0.5}


def test_users_not_asked_for_are_not_replayed() -> None:
    newest = itemitem.newest_likes(np.array([0, 1]), np.array([C, C]), (2, N_ITEMS))
    seen = to_matrix(np.array([0, 1]), np.array([C, C]), (2, N_ITEMS))
    arrivals = (np.array([0, 0, 1]), np.array([A, B, A]))
    out = replay.replay(silent, chain_model(), 0.0, newest, arrivals, seen, np.array([1]), k=1)
    assert out["users"] == 1 and out["arrivals"] == 1


def test_past_the_budget_a_seeded_sample_of_whole_users_is_replayed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # GIVEN 10 users with 3 arrivals each, and room for 10 arrivals
    monkeypatch.setattr(replay, "REPLAY_CELLS", 10 * N_ITEMS)
    users = np.arange(10)
    newest = itemitem.newest_likes(users, np.full(10, C), (10, N_ITEMS))
    seen = to_matrix(users, np.full(10, C), (10, N_ITEMS))
    arrivals = (np.repeat(users, 3), np.tile([A, B, D], 10))
    out = replay.replay(silent, chain_model(), 0.0, newest, arrivals, seen, users, seed=3)
    # THEN three whole users are replayed, the same three for the same seed
    assert out["users"] == 3 and out["arrivals"] == 9
    assert replay.replay(silent, chain_model(), 0.0, newest, arrivals, seen, users, seed=3) == out


def test_a_refolded_lightfm_vector_follows_the_new_likes_and_the_trained_one_does_not() -> None:
    # GIVEN LightFM in two dimensions: 0 and 3 point one way, 1 the other and 2 nearly so; a user
    # trained on their like of 0 (vector (1, 0)), then likes 1 and 2, held out; the identity map
    items = np.array([[1, 0], [0, 1], [0.1, 1], [1, 0]], dtype=np.float32)
    user = np.array([[1, 0]], dtype=np.float32)
    liked = to_matrix(np.array([0]), np.array([0]), (1, 4))
    projection = np.array([[1, 0], [0, 1], [0, 0]], dtype=np.float32)
    newest = itemitem.newest_likes(np.array([0]), np.array([0]), (1, 4))
    arrivals = (np.array([0, 0]), np.array([1, 2]))
    empty = ItemItem.of(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 4)

    def trained(users: np.ndarray) -> np.ndarray:
        return np.asarray(user[users] @ items.T, dtype=np.float32)

    def run(weight: float) -> dict[str, float]:
        fold = replay.FoldIn(user, items, np.zeros(4, np.float32), projection, liked, weight)
        out = replay.replay(trained, empty, 1.0, newest, arrivals, liked, np.array([0]), k=1, fold=fold)
        return out["realtime"]

    # WHEN LightFM alone replays them, top 1
    # THEN with the trained vector 3 always comes first: no hit; refolded fully, once 1 has arrived
    # the user is the mean of 0 and 1, (0.5, 0.5), and 2 (0.55) beats 3 (0.5): one hit of two
    assert run(0.0) == {"hr@1": 0.0, "ndcg@1": 0.0}
    assert run(1.0) == {"hr@1": 0.5, "ndcg@1": 0.5}
    # and at weight 0.25 the user is (0.875, 0.125): 3 (0.875) still beats 2 (0.2125)
    assert run(0.25) == {"hr@1": 0.0, "ndcg@1": 0.0}
