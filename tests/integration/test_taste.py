"""POST /recommendations: picks for a visitor from the movies they like, and every bad body."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from functions.recommend import app as recommend_app
from recsys.runtime import Runtime
from tests import data
from tests.conftest import load_event

pytestmark = pytest.mark.integration

ORIGIN = "https://site.example"


@pytest.fixture
def served(model_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.environ.update(MODEL_URI=str(model_store), ALLOWED_ORIGIN=ORIGIN)
    monkeypatch.setattr(recommend_app, "runtime", Runtime(parts=recommend_app.runtime.parts))


def post(ctx: Any, body: Any, content_type: str | None = "application/json", encode: bool = False) -> tuple[int, dict]:
    event = load_event("taste")
    raw = body if isinstance(body, str) else json.dumps(body)
    event["headers"] = {"Origin": ORIGIN, **({"Content-Type": content_type} if content_type else {})}
    event["body"] = base64.b64encode(raw.encode()).decode() if encode else raw
    event["isBase64Encoded"] = encode
    response = recommend_app.lambda_handler(event, ctx)
    headers = {k: v[-1] for k, v in response.get("multiValueHeaders", {}).items()}
    assert headers.get("Access-Control-Allow-Origin") == ORIGIN  # errors too
    return response["statusCode"], json.loads(response["body"])


def test_a_visitor_who_likes_half_a_block_gets_the_rest_of_that_block(served: None, lambda_context: Any) -> None:
    # GIVEN a visitor the model never saw, who likes the first half of group 1's movies
    block = range(data.ITEMS_PER_GROUP + 1, 2 * data.ITEMS_PER_GROUP + 1)
    liked = list(block)[: data.ITEMS_PER_GROUP // 2]
    # WHEN they ask for as many picks as the rest of the block
    status, body = post(lambda_context, {"liked": liked, "k": data.ITEMS_PER_GROUP // 2, "explain": True})
    # THEN the picks are exactly the rest of the block, none of the liked ones, each explained by liked ones
    assert status == 200 and body["model"] == "personalized" and body["fallback"] is None
    assert sorted(i["movie_id"] for i in body["items"]) == list(block)[data.ITEMS_PER_GROUP // 2 :]
    assert all({m["movie_id"] for m in i["because_you_liked"]} <= set(liked) for i in body["items"])


def test_liked_and_disliked_movies_are_never_returned_and_duplicates_count_once(
    served: None, lambda_context: Any
) -> None:
    status, body = post(lambda_context, {"liked": [1, 1, 2, 999999, 2], "disliked": [3, 888888], "k": 100})
    returned = {i["movie_id"] for i in body["items"]}
    assert status == 200 and body["liked"] == [1, 2] and body["ignored"] == [888888, 999999]
    assert not returned & {1, 2, 3} and len(returned) == data.GROUPS * data.ITEMS_PER_GROUP - 3


def test_no_known_liked_movie_gets_popularity_minus_the_disliked(served: None, lambda_context: Any) -> None:
    status, body = post(lambda_context, {"liked": [999999], "disliked": [1], "k": 100})
    assert status == 200 and body["model"] == "popularity" and body["fallback"] == "no_known_likes"
    assert 1 not in {i["movie_id"] for i in body["items"]} and body["ignored"] == [999999]


def test_a_base64_encoded_body_is_read_like_a_plain_one(served: None, lambda_context: Any) -> None:
    plain = post(lambda_context, {"liked": [13], "k": 3})
    assert post(lambda_context, {"liked": [13], "k": 3}, encode=True) == plain


@pytest.mark.parametrize(
    "body, content_type, needle",
    [
        ("{", "application/json", "JSON"),
        ("", "application/json", "body"),
        ("[1, 2]", "application/json", "body"),
        ({}, "application/json", "liked"),
        ({"liked": "1,2"}, "application/json", "liked"),
        ({"liked": [1.5]}, "application/json", "liked.0"),
        ({"liked": ["1"]}, "application/json", "liked.0"),
        ({"liked": [True]}, "application/json", "liked.0"),
        ({"liked": [-1]}, "application/json", "liked.0"),
        ({"liked": [2**31]}, "application/json", "liked.0"),
        ({"liked": list(range(501))}, "application/json", "at most 500"),
        ({"liked": [1], "disliked": list(range(501))}, "application/json", "at most 500"),
        ({"liked": [1], "k": 0}, "application/json", "k"),
        ({"liked": [1], "k": 101}, "application/json", "k"),
        ({"liked": [1], "k": "5"}, "application/json", "k"),
        ({"liked": [1], "explain": "yes"}, "application/json", "explain"),
        ({"liked": [1], "genre": "x" * 65}, "application/json", "genre"),
        ({"liked": [1], "user_id": 3}, "application/json", "user_id"),
        ({"liked": [1]}, "text/plain", "application/json"),
        ({"liked": [1]}, None, "application/json"),
        ({"liked": [1], "padding": "x" * 40_000}, "application/json", "32 KiB"),
        # hostile bodies under 32 KiB (docs/RELIABILITY.md): each was a 500 before the body was ours to parse
        ('{"liked": [' + "9" * 5000 + "]}", "application/json", "digits"),
        ("[" * 10_000 + "]" * 10_000, "application/json", "nests deeper"),
        ('{"liked": ' + "[" * 9 + "1" + "]" * 9 + "}", "application/json", "nests deeper"),
        ('{"liked": [1], "liked": [2]}', "application/json", "repeats a key"),
        ('{"liked": [1], "genre": "\\ud800"}', "application/json", "surrogate"),
        ('{"liked": [NaN]}', "application/json", "NaN"),
        ('{"liked": [1e400]}', "application/json", "liked.0"),
    ],
)
def test_a_bad_body_is_a_400_that_says_what_is_wrong(
    served: None, lambda_context: Any, body: Any, content_type: str | None, needle: str
) -> None:
    status, answer = post(lambda_context, body, content_type)
    assert status == 400 and answer["error"]["code"] == "invalid_request"
    assert needle in answer["error"]["message"]


def test_a_body_that_is_not_utf8_is_a_400(served: None, lambda_context: Any) -> None:
    event = load_event("taste")
    event.update(body=base64.b64encode(b'{"liked": [1\x9a]}').decode(), isBase64Encoded=True)
    event["headers"] = {"Origin": ORIGIN, "Content-Type": "application/json"}
    response = recommend_app.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 400 and "UTF-8" in json.loads(response["body"])["error"]["message"]


def test_a_whole_number_written_as_a_float_is_an_id(served: None, lambda_context: Any) -> None:
    # JSON Schema's integer admits 13.0; strings and booleans stay refused (see the 400 cases above)
    assert post(lambda_context, {"liked": [13.0], "k": 3.0}) == post(lambda_context, {"liked": [13], "k": 3})


def test_the_preflight_allows_post(served: None, lambda_context: Any) -> None:
    event = load_event("taste", httpMethod="OPTIONS", body=None)
    event["headers"] = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    response = recommend_app.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 204
    assert "POST" in response["multiValueHeaders"]["Access-Control-Allow-Methods"][0].split(",")
