from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import evaluate, popularity_scorer
from training.split import time_split, to_matrix

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
