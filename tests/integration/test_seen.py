"""Known answers for the seen set: the real training job on a checkerboard with three twists."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devstack.gateway import LocalApi
from devstack.invoker import Invoker
from devstack.template import load_application
from functions.recommend import app as recommend_app
from functions.similar import app as similar_app
from recsys import service
from recsys.runtime import Runtime
from tests import data
from tests.conftest import ROOT
from tests.integration.test_handlers import call

pytestmark = pytest.mark.integration

DISLIKER = 1  # rates their own group's unseen movie with one star
DISLIKED = data.group_of_user(DISLIKER) * data.ITEMS_PER_GROUP + (DISLIKER % data.ITEMS_PER_GROUP) + 1
LOW_RATER = data.GROUPS * data.USERS_PER_GROUP + 1  # rated five movies, none above two stars
NEVER_LIKED = data.GROUPS * data.ITEMS_PER_GROUP + 1  # an Action movie rated only with one star


@pytest.fixture(scope="module")
def twisted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, set[int]]]:
    """The checkerboard plus the three twists, trained by the real job; and every user's rated movies."""
    folder = data.write_checkerboard(tmp_path_factory.mktemp("twisted"))
    extra = [f"{DISLIKER}\t{DISLIKED}\t1\t890000000"]
    extra += [f"{LOW_RATER}\t{m}\t2\t{890000001 + m}" for m in range(1, 6)]
    extra += [f"{u}\t{NEVER_LIKED}\t1\t{890000100 + u}" for u in range(2, 8)]
    with (folder / "u.data").open("a") as f:
        f.write("\n".join(extra) + "\n")
    flags = ["0"] * 19
    flags[1] = "1"
    with (folder / "u.item").open("ab") as f:
        f.write(f"{NEVER_LIKED}|Movie {NEVER_LIKED} (1999)|01-Jan-1995||http://x|{'|'.join(flags)}\n".encode())
    rated: dict[int, set[int]] = {}
    for line in (folder / "u.data").read_text().splitlines():
        user, movie = (int(v) for v in line.split("\t")[:2])
        rated.setdefault(user, set()).add(movie)
    store = tmp_path_factory.mktemp("twisted-store")
    assert data.train(folder, str(store)) == 0
    return store, rated


def _ids(answer: dict[str, Any]) -> list[int]:
    return [item["movie_id"] for item in answer["items"]]


def test_a_one_star_movie_that_would_rank_first_is_never_recommended(twisted) -> None:  # type: ignore[no-untyped-def]
    store, rated = twisted
    _, model = data.published(store)
    u = model.user_index(DISLIKER)
    # GIVEN a model whose scores would put the disliked movie first among the user's unliked ones
    ranked = [int(model.item_ids[i]) for i in np.argsort(-model.score_user(u)).tolist()]
    liked = {int(model.item_ids[i]) for i in model.history_items[model.liked(u)].tolist()}
    assert [m for m in ranked if m not in liked][0] == DISLIKED
    # WHEN asking every path for every movie THEN no rated movie comes back, the disliked one included
    for kind, genre, explain in [
        ("personalized", None, False), ("personalized", None, True), ("personalized", "Action", False),
        ("popularity", None, False), ("popularity", "Action", False),
    ]:  # fmt: skip
        answer = service.recommendations(model, DISLIKER, 100, kind, genre, explain)
        assert answer["items"] and not set(_ids(answer)) & rated[DISLIKER], (kind, genre, explain)
        for item in answer["items"] if explain else []:
            assert {m["movie_id"] for m in item["because_you_liked"]} <= liked  # reasons are likes only


def test_a_user_with_only_low_ratings_gets_popularity_minus_their_movies(twisted, lambda_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, rated = twisted
    os.environ.update(MODEL_URI=str(store), ALLOWED_ORIGIN="*")
    monkeypatch.setattr(recommend_app, "runtime", Runtime(parts=recommend_app.runtime.parts))
    status, body, _ = call(recommend_app, lambda_context, "recommend", f"/recommendations/{LOW_RATER}", k="100")
    assert status == 200 and body["model"] == "popularity" and body["fallback"] == "no_likes"
    assert body["items"] and not set(_ids(body)) & rated[LOW_RATER]


def test_a_never_liked_movie_is_nobodys_neighbour_and_answers_by_genre(twisted, lambda_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, _ = twisted
    _, model = data.published(store)
    for movie_id in model.item_ids.tolist():
        if movie_id != NEVER_LIKED:
            answer = service.similar(model, movie_id, 100)
            assert answer["basis"] == "model" and NEVER_LIKED not in _ids(answer)
    os.environ.update(MODEL_URI=str(store), ALLOWED_ORIGIN="*")
    monkeypatch.setattr(similar_app, "runtime", Runtime(parts=similar_app.runtime.parts))
    status, body, _ = call(similar_app, lambda_context, "similar", f"/movies/{NEVER_LIKED}/similar", k="5")
    assert status == 200 and body["basis"] == "genres" and body["movie"]["likes"] == 0
    assert len(body["items"]) == 5 and all("Action" in m["genres"] for m in body["items"])
    assert all(data.group_of_item(m) == 0 for m in _ids(body))


#: ML-100K's "unknown" row (RecBole's copy: "unkonwn"), no year.
PLACEHOLDER = 267


def test_no_ml100k_user_is_recommended_a_movie_they_rated(tmp_path_factory: pytest.TempPathFactory) -> None:
    # GIVEN the real ML-100K, trained by the real job (quick settings) and served by the local API
    ratings = ROOT / "data" / "ml-100k"
    rated: dict[int, set[int]] = {}
    for line in next(ratings.glob("*.inter")).read_text().splitlines()[1:]:
        user, movie = (int(v) for v in line.split("\t")[:2])
        rated.setdefault(user, set()).add(movie)
    store = tmp_path_factory.mktemp("ml100k-store")
    assert data.train(ratings, str(store), "--no-ease") == 0
    app = load_application()
    local = LocalApi(app, Invoker(app, {"MODEL_URI": str(store), "ALLOWED_ORIGIN": "*"}), "*")
    # WHEN every user asks both models for 100 movies THEN none of them is one they rated
    for user, seen in rated.items():
        for kind in ("personalized", "popularity"):
            status, _, body = local.handle("GET", f"/recommendations/{user}?k=100&model={kind}", {}, b"")
            answer = json.loads(body)
            assert status == 200 and len(answer["items"]) == 100, (user, kind)
            assert not set(_ids(answer)) & seen, (user, kind, sorted(set(_ids(answer)) & seen))
            assert PLACEHOLDER not in _ids(answer)  # ML-100K's placeholder row is no movie (`make data`'s copy)
    # AND the model says it left the placeholder out, and offers no "unknown" genre
    card = json.loads(local.handle("GET", "/model", {}, b"")[2])
    assert card["data"]["placeholders"]["movies"] == [PLACEHOLDER] and "unknown" not in card["genres"]
