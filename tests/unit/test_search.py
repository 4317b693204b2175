"""Title search ranks as specified: every word present, prefix matches first, then the most liked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys import search, service
from tests.unit.test_artifact import tiny

pytestmark = pytest.mark.unit

WORDS = ["star", "wars", "trek", "la", "vie", "en", "rose", "étoile", "Éte", "the", "a"]


def reference(keys: list[str], likes: np.ndarray, query: str, limit: int) -> list[int]:
    words = search.fold(query).split()
    match = [i for i, key in enumerate(keys) if all(w in key for w in words)]
    match.sort(key=lambda i: (not keys[i].startswith(words[0]), -int(likes[i]), i))
    return match[:limit]


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    titles=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join), min_size=4, max_size=40),
    likes=st.lists(st.integers(0, 5), min_size=40, max_size=40),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join),
    limit=st.integers(1, 10),
)
def test_search_matches_the_reference_ranking(titles: list[str], likes: list[int], query: str, limit: int) -> None:
    n = len(titles)
    counts = np.array(likes[:n], dtype=np.int32)
    base = tiny()
    model = tiny(
        item_ids=np.arange(1, n + 1, dtype=np.int32), titles=tuple(titles), like_counts=counts,
        popularity=np.lexsort((np.arange(n), -counts)).astype(np.int32), years=np.zeros(n, np.int16),
        item_genres=np.zeros(n, np.uint32), item_factors=np.zeros((n, 2), np.float32),
        item_item_indptr=np.zeros(n + 1, np.int64), item_biases=np.zeros(n, np.float32),
        neighbours=base.neighbours[:0], neighbour_sims=base.neighbour_sims[:0],
    )  # fmt: skip
    got = [m["movie_id"] - 1 for m in service.search_movies(model, query, limit)["items"]]
    keys = [search.fold(t) for t in titles]
    assert got == reference(keys, counts, query, limit)


def test_search_is_case_and_accent_insensitive() -> None:
    model = tiny(titles=("La Vie en Rose", "Étoile", "etoile filante", "D"))  # likes 5, 3, 9, 1
    found = [m["title"] for m in service.search_movies(model, "ETOILE", 10)["items"]]
    assert found == ["etoile filante", "Étoile"]  # both prefix matches: the most liked first
