from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training import ease
from training.evaluate import evaluate, popularity_scorer
from training.split import auto_split, global_split, per_user_split, time_split, to_matrix

pytestmark = pytest.mark.unit


def test_time_split_holds_out_each_users_latest_fifth() -> None:
    # GIVEN user 0 with 10 rows and user 1 with 3 rows (shuffled in time)
    users = np.array([0] * 10 + [1] * 3)
    ts = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 1, 3, 2])
    held = time_split(users, ts, np.arange(13), 0.2)
    # THEN user 0's two latest rows are held out, and user 1 (floor(0.6) = 0) keeps all for training
    assert sorted(ts[:10][held[:10]].tolist()) == [9, 10]
    assert not held[10:].any()


def test_time_split_keeps_one_training_row() -> None:
    held = time_split(np.array([0, 0]), np.array([1, 2]), np.arange(2), 0.9)
    assert held.tolist() == [False, True]


def test_evaluate_perfect_ranker_scores_one() -> None:
    # GIVEN 2 users, 6 items; the test item of each user scores highest
    train = to_matrix(np.array([0, 1]), np.array([0, 1]), (2, 6))
    test = to_matrix(np.array([0, 1]), np.array([5, 4]), (2, 6))
    table = np.zeros((2, 6))
    table[0, 5] = table[1, 4] = 1.0
    result = evaluate(lambda users: table[users], train, test)
    assert result["recall@10"] == 1.0 and result["ndcg@10"] == pytest.approx(1.0)
    assert result["mrr"] == 1.0 and result["auc"] == 1.0 and result["precision@10"] == pytest.approx(0.1)


def test_evaluate_excludes_training_items_from_the_ranking() -> None:
    # GIVEN a ranker that scores the training item highest WHEN evaluated THEN the test item still ranks first
    train = to_matrix(np.array([0]), np.array([0]), (1, 4))
    test = to_matrix(np.array([0]), np.array([1]), (1, 4))
    result = evaluate(lambda users: np.array([[9.0, 5.0, 1.0, 0.0]]), train, test)
    assert result["mrr"] == 1.0


def test_popularity_scorer_ranks_by_count_then_index() -> None:
    train = to_matrix(np.array([0, 1, 1, 2]), np.array([2, 2, 1, 1]), (3, 4))
    scores = popularity_scorer(train)(np.array([0]))[0]
    assert np.argsort(-scores).tolist() == [1, 2, 0, 3]


def test_evaluate_masks_a_seen_movie_that_was_not_liked() -> None:
    # GIVEN a user who liked item 0, rated item 2 with one star, and whose held-out like is item 1;
    # a ranker puts the seen item 2 first
    scores = np.array([[9.0, 5.0, 7.0, 0.0]])
    likes = to_matrix(np.array([0]), np.array([0]), (1, 4))
    seen = to_matrix(np.array([0, 0]), np.array([0, 2]), (1, 4))
    test = to_matrix(np.array([0]), np.array([1]), (1, 4))
    # WHEN evaluated with only the likes masked THEN the held-out like ranks second
    assert evaluate(lambda users: scores, likes, test)["mrr"] == 0.5
    # WHEN evaluated with the seen set masked, as serving masks it, THEN it ranks first
    assert evaluate(lambda users: scores, seen, test)["mrr"] == 1.0


def _rows() -> tuple[np.ndarray, ...]:
    # user 0: likes at t=1,2,3,4,5 and a one-star rating at t=4.5 (after its last training like, t=4);
    # user 1: a one-star rating at t=0, likes at t=6 and t=7 (7 is the same second as user 2's row,
    # and the line number breaks the tie); user 2: a single like at t=7
    users = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])
    ts = np.array([1, 2, 3, 4, 5, 4, 0, 6, 7, 7]) * 10
    ts[5] = 45
    order = np.arange(10)
    liked = np.array([1, 1, 1, 1, 1, 0, 0, 1, 1, 1], dtype=bool)
    return users, ts, order, liked


def test_per_user_split_seen_is_every_rating_up_to_the_last_training_like() -> None:
    users, ts, order, liked = _rows()
    split = per_user_split(users, ts, order, liked, 0.2)
    # THEN user 0 holds out its latest like (t=50); user 1 (2 likes) and user 2 keep all for training
    assert np.flatnonzero(split.test).tolist() == [4]
    assert np.flatnonzero(split.train).tolist() == [0, 1, 2, 3, 7, 8, 9]
    # and the one-star rating at t=45 (after user 0's last training like at t=40) is not seen, user 1's is
    assert np.flatnonzero(split.seen).tolist() == [0, 1, 2, 3, 6, 7, 8, 9]
    assert split.name == "per_user_latest_likes"


def test_global_split_holds_out_exactly_the_rows_after_the_cut() -> None:
    users, ts, order, liked = _rows()
    # WHEN the latest 40% of 10 ratings (4 rows) are after the cut
    split = global_split(users, ts, order, liked, 0.4)
    # THEN those rows, in (time, line) order t=50, 60, 70, 70, are exactly the unseen ones
    after = np.lexsort((order, ts))[-4:]
    assert sorted(after.tolist()) == [4, 7, 8, 9]
    assert np.flatnonzero(~split.seen).tolist() == [4, 7, 8, 9]
    # and held out are the likes after it of users with a like before it (not users 1 and 2)
    assert np.flatnonzero(split.test).tolist() == [4]
    assert np.flatnonzero(split.train).tolist() == [0, 1, 2, 3]
    assert split.detail["cut_timestamp"] == 50
    # WHEN only one row is after the cut THEN the line number breaks the tie at t=70
    assert np.flatnonzero(~global_split(users, ts, order, liked, 0.1).seen).tolist() == [9]


def test_auto_split_is_per_user_for_months_and_global_for_years() -> None:
    day = 86400
    assert auto_split(np.array([0, 200 * day]))[0] == "per-user"
    assert auto_split(np.array([0, 5 * 365 * day]))[0] == "global"


def test_ease_recommends_the_item_that_co_occurs() -> None:
    # GIVEN users who like items 0 and 1 together, and others who like 2 and 3 together
    x = to_matrix(np.array([0, 0, 1, 1, 2, 2, 3]), np.array([0, 1, 0, 1, 2, 3, 0]), (4, 4))
    b = ease.weights(ease.gram(x), 1.0)
    assert np.allclose(np.diag(b), 0.0)
    # THEN user 3, who liked item 0, gets item 1 above items 2 and 3
    scores = ease.scorer(sp.csr_matrix(x), b)(np.array([3]))[0]
    assert scores[1] > scores[2] and scores[1] > scores[3]


def test_ease_weights_equal_the_closed_form() -> None:
    # GIVEN a random binary user-item matrix WHEN B comes from the Cholesky path in float32
    rng = np.random.default_rng(5)
    x = sp.csr_matrix((rng.random((60, 25)) < 0.3).astype(np.float32))
    b = ease.weights(ease.gram(x), 7.0)
    # THEN it is Steck's B = I - P diag(1 / diag(P)) with P = (XᵀX + λI)⁻¹, computed in float64
    dense = x.toarray().astype(np.float64)
    p = np.linalg.inv(dense.T @ dense + 7.0 * np.eye(25))
    expected = np.eye(25) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(b, expected, atol=1e-5)
