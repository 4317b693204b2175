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
    answer = service.search_movies(model, query, limit)
    got = [m["movie_id"] - 1 for m in answer["items"]]
    keys = [search.fold(t) for t in titles]
    expected = reference(keys, counts, query, limit)
    if expected:  # a title has every word: exactly the reference ranking
        assert got == expected and answer["match"] == "exact"
    elif answer["match"] == "exact":  # none: found without spaces, or else only the closest titles
        assert got and all(search.compact(query) in search.compact(titles[i]) for i in got)
    else:
        assert answer["match"] == "closest" and len(got) <= limit


def test_search_is_case_and_accent_insensitive() -> None:
    model = tiny(titles=("La Vie en Rose", "Étoile", "etoile filante", "D"))  # likes 5, 3, 9, 1
    found = [m["title"] for m in service.search_movies(model, "ETOILE", 10)["items"]]
    assert found == ["etoile filante", "Étoile"]  # both prefix matches: the most liked first


def test_a_typo_or_a_missing_space_still_finds_the_title() -> None:
    # GIVEN titles, "Star Wars" and "The Godfather" among them, the most liked first
    titles = ("Star Wars", "Godfather, The", "Godfather: Part II, The", "Star Trek", "Wall-E", "Stargate")
    model = tiny(
        item_ids=np.arange(1, 7, dtype=np.int32), titles=titles, like_counts=np.array([9, 8, 7, 6, 5, 4], np.int32),
        popularity=np.arange(6, dtype=np.int32), years=np.zeros(6, np.int16), item_genres=np.zeros(6, np.uint32),
        item_factors=np.zeros((6, 2), np.float32), item_item_indptr=np.zeros(7, np.int64),
        item_biases=np.zeros(6, np.float32), neighbours=tiny().neighbours[:0], neighbour_sims=tiny().neighbour_sims[:0],
    )  # fmt: skip

    def search_for(query: str) -> tuple[str, list[str]]:
        answer = service.search_movies(model, query, 3)
        return answer["match"], [m["title"] for m in answer["items"]]

    # THEN a missing space or a dropped hyphen is still a match
    assert search_for("starwars") == ("exact", ["Star Wars"])
    assert search_for("walle") == ("exact", ["Wall-E"])
    # AND a typo gives the closest titles, the one sharing most first, then the most liked
    match, found = search_for("godfater")
    assert match == "closest" and found[:2] == ["Godfather, The", "Godfather: Part II, The"]
    assert search_for("star wrs")[1][0] == "Star Wars" and search_for("stargte")[1][0] == "Stargate"
    # AND what is close to nothing finds nothing; words that match stay exact
    assert search_for("xqzv") == ("closest", []) and search_for("!!!") == ("closest", [])
    assert search_for("star") == ("exact", ["Star Wars", "Star Trek", "Stargate"])
