from __future__ import annotations

import numpy as np
import pytest

from recsys.scoring import top_k

pytestmark = pytest.mark.unit


def test_top_k_orders_best_first() -> None:
    # GIVEN scores with a known order WHEN the top 3 are asked THEN they come best first
    assert top_k(np.array([0.1, 0.9, 0.5, 0.7], dtype=np.float32), 3).tolist() == [1, 3, 2]


def test_top_k_ties_break_by_index() -> None:
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.0], dtype=np.float32)
    assert top_k(scores, 2).tolist() == [1, 2]


def test_top_k_skips_masked_items() -> None:
    scores = np.array([5.0, -np.inf, 3.0, -np.inf], dtype=np.float32)
    assert top_k(scores, 10).tolist() == [0, 2]


def test_top_k_k_larger_than_catalogue_returns_all() -> None:
    assert top_k(np.arange(4, dtype=np.float32), 100).tolist() == [3, 2, 1, 0]


def test_top_k_matches_full_sort_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=5000).astype(np.float32)
    assert top_k(scores, 25).tolist() == np.argsort(-scores, kind="stable")[:25].tolist()


@pytest.mark.parametrize("seed", range(40))
def test_top_k_matches_a_full_sort_whatever_the_ties_and_masks(seed: int) -> None:
    # GIVEN scores of every awkward kind: lengths off the 64-score blocks, heavy ties, most of them
    # masked with -inf, a +inf, NaN
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    scores = rng.normal(size=n).astype(np.float32)
    if seed % 2:
        scores = np.round(scores, 1)  # many equal scores
    masked = rng.random(n) < rng.choice([0.0, 0.5, 0.99, 1.0])
    scores[masked] = -np.inf
    if seed % 5 == 0:
        scores[rng.integers(n)] = np.inf
    if seed % 7 == 0:
        scores[rng.integers(n)] = np.nan
    k = int(rng.choice([1, 10, 50, n]))
    # WHEN the best k are asked
    got = top_k(scores, k).tolist()
    # THEN they are what sorting every score gives: best first, ties by index, never -inf or NaN
    ranked = np.argsort(-scores, kind="stable")
    assert got == [i for i in ranked.tolist() if np.isfinite(scores[i]) or scores[i] > 0][:k]


def test_top_k_rejects_zero() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        top_k(np.ones(3), 0)
