"""POST /events and DELETE /users/{user_id}/events through EventsFunction's handler, and what
RecommendFunction and HistoryFunction make of them, against a moto DynamoDB server and a model the
real training job trained on the checkerboard (tests/data.py: user u of group g has not rated
movie ``g * 12 + u % 12 + 1``, which a good model recommends first)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.dynamodb import create_events_table
from functions.events import app as events_app
from functions.history import app as history_app
from functions.recommend import app as recommend_app
from recsys.dynamodb import DynamoDBClient
from recsys.events import TOMBSTONE, EventLog, EventsSettings, all_events
from recsys.runtime import Runtime
from tests import data
from tests.conftest import load_event

pytestmark = pytest.mark.integration


@pytest.fixture
def table(moto_endpoint: str, model_store: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh events table on moto, named in the environment of the three functions, each with a
    runtime of its own on the checkerboard model; a boto3 client of it (the table's name on `name`)."""
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.name = create_events_table(client, f"events-{uuid.uuid4().hex[:12]}")
    os.environ.update(AWS_ENDPOINT_URL=moto_endpoint, AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
                      MODEL_URI=str(model_store), ALLOWED_ORIGIN="*", EVENTS_TABLE=client.name)  # fmt: skip
    for module in (events_app, history_app, recommend_app):
        monkeypatch.setattr(module, "runtime", Runtime(parts=module.MODEL_PARTS))
    monkeypatch.setattr(events_app, "_log", None)
    return client


def iso(minutes_ago: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)).isoformat()


def post(ctx: Any, body: Any) -> tuple[int, dict[str, Any]]:
    event = load_event("events")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    response = events_app.lambda_handler(event, ctx)
    return response["statusCode"], json.loads(response["body"])


def forget(ctx: Any, user_id: int) -> tuple[int, dict[str, Any]]:
    event = load_event("events", httpMethod="DELETE", path=f"/users/{user_id}/events",
                       resource="/users/{user_id}/events", body=None)  # fmt: skip
    response = events_app.lambda_handler(event, ctx)
    return response["statusCode"], json.loads(response["body"])


def recommend(ctx: Any, user_id: int, **query: str) -> dict[str, Any]:
    event = load_event("recommend", path=f"/recommendations/{user_id}", pathParameters={"user_id": str(user_id)},
                       queryStringParameters={"k": "24", **query})  # fmt: skip
    response = recommend_app.lambda_handler(event, ctx)
    assert response["statusCode"] == 200, response["body"]
    return dict(json.loads(response["body"]))


def history(ctx: Any, user_id: int) -> tuple[int, dict[str, Any]]:
    event = load_event("history", path=f"/users/{user_id}/history", pathParameters={"user_id": str(user_id)},
                       queryStringParameters={"k": "100"})  # fmt: skip
    response = history_app.lambda_handler(event, ctx)
    return response["statusCode"], json.loads(response["body"])


def ids(answer: dict[str, Any]) -> list[int]:
    return [item["movie_id"] for item in answer["items"]]


def test_what_a_user_just_rated_is_never_recommended_on_their_next_request(table: Any, lambda_context: Any) -> None:
    # GIVEN user 1, whose unrated movie 2 the model recommends first
    user, unseen = 1, 2
    before = recommend(lambda_context, user)
    assert ids(before)[0] == unseen and before["realtime"] is True
    # WHEN the site says they rated it 2 (seen, not liked) and liked nothing else
    status, stored = post(lambda_context, {"user_id": user, "events": [
        {"movie_id": unseen, "kind": "rating", "rating": 2, "at": iso(1)}]})  # fmt: skip
    assert status == 200 and stored["stored"] == [unseen], stored
    # THEN the next request never returns it, in any path
    for query in ({}, {"model": "popularity"}, {"genre": "Action"}, {"explain": "true"}):
        after = recommend(lambda_context, user, **query)
        assert unseen not in ids(after) and after["realtime"] is True, query
        assert not set(ids(after)) & data.rated_by(user)


def test_new_likes_are_a_users_newest_and_steer_their_item_item_side(table: Any, lambda_context: Any) -> None:
    # GIVEN user 1 of group 0; the trained picks are group 0's unrated movie, then group 1's
    user = 1
    assert data.group_of_item(ids(recommend(lambda_context, user))[0]) == 0
    # WHEN they like movies of group 1 that they had not rated
    fresh = sorted(set(range(13, 25)) - data.rated_by(user))[:3]
    post(lambda_context, {"user_id": user, "events": [
        {"movie_id": m, "kind": "like", "at": iso(3 - n)} for n, m in enumerate(fresh)]})  # fmt: skip
    after = recommend(lambda_context, user, explain="true")
    # THEN none of them is recommended, and a pick names a new like among the likes behind it
    assert not set(fresh) & set(ids(after))
    named = {m["movie_id"] for item in after["items"] for m in item["because_you_liked"] or []}
    assert named & set(fresh), after["items"][:3]
    # and the history lists them first, newest first, as events
    status, liked = history(lambda_context, user)
    assert status == 200 and liked["realtime"] is True
    assert [i["movie_id"] for i in liked["items"][:3]] == fresh[::-1]
    assert [i["source"] for i in liked["items"][:4]] == ["event"] * 3 + ["model"]


def test_a_user_the_model_never_saw_is_served_from_their_events(table: Any, lambda_context: Any) -> None:
    # GIVEN an id that is not in the model
    user = 900
    assert recommend(lambda_context, user)["fallback"] == "unknown_user"
    assert history(lambda_context, user)[0] == 404
    # WHEN the site sends three likes of group 1
    post(lambda_context, {"user_id": user, "events": [
        {"movie_id": m, "kind": "like", "at": iso(5 - m % 5)} for m in (13, 14, 15)]})  # fmt: skip
    # THEN they get personalized picks, group 1's first, not popularity, and never their likes
    answer = recommend(lambda_context, user)
    assert answer["model"] == "personalized" and answer["fallback"] is None
    assert not {13, 14, 15} & set(ids(answer))
    assert all(data.group_of_item(m) == 1 for m in ids(answer)[:9]), ids(answer)
    status, liked = history(lambda_context, user)
    assert status == 200 and liked["total"] == 3


def test_a_retried_or_late_event_never_undoes_a_newer_one(table: Any, lambda_context: Any) -> None:
    user, movie = 2, 20
    newer = {"user_id": user, "events": [{"movie_id": movie, "kind": "like", "at": iso(1)}]}
    answers = [post(lambda_context, newer) for _ in range(3)]
    assert all(status == 200 and a["stored"] == [movie] for status, a in answers)
    # an older unlike arrives late: it changes nothing, and says so
    status, late = post(lambda_context, {"user_id": user, "events": [{"movie_id": movie, "kind": "unlike",
                                                                      "at": iso(10)}]})  # fmt: skip
    assert status == 200 and late["stale"] == [movie] and late["stored"] == []
    items = table.query(TableName=table.name, KeyConditionExpression="user_id = :u",
                        ExpressionAttributeValues={":u": {"N": str(user)}})["Items"]  # fmt: skip
    assert [(int(i["movie_id"]["N"]), i["kind"]["S"]) for i in items] == [(movie, "like")]
    # in one request, the latest of a movie wins whatever the order in the list
    post(lambda_context, {"user_id": user, "events": [{"movie_id": 21, "kind": "unlike", "at": iso(1)},
                                                      {"movie_id": 21, "kind": "like", "at": iso(2)}]})  # fmt: skip
    stored = EventLog(table, EventsSettings(table.name)).recent(user).events
    assert {e.movie_id: e.kind for e in stored} == {movie: "like", 21: "unlike"}


def test_unknown_movies_are_listed_and_not_stored(table: Any, lambda_context: Any) -> None:
    status, answer = post(lambda_context, {"user_id": 3, "events": [
        {"movie_id": 5, "kind": "like", "at": iso(1)}, {"movie_id": 99999, "kind": "like", "at": iso(1)}]})
    assert status == 200 and answer["stored"] == [5] and answer["ignored"] == [99999]
    assert table.scan(TableName=table.name)["Count"] == 1


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([{"movie_id": 1, "kind": "like", "at": "2026-12-06T10:00:00"}], "events.0.at: String should match pattern"),
        ([{"movie_id": 1, "kind": "like", "at": "yesterday"}], "events.0.at: String should match pattern"),
        ([{"movie_id": 1, "kind": "like", "at": "2026-02-30T10:00:00Z"}], "not an ISO 8601 time"),
        ([{"movie_id": 1, "kind": "like", "at": "2999-01-01T00:00:00Z"}], "in the future"),
        ([{"movie_id": 1, "kind": "like", "at": "2001-01-01T00:00:00Z"}], "older than the events' retention"),
        ([{"movie_id": 1, "kind": "rating", "at": "NOW"}], "a rating event gives its rating"),
        ([{"movie_id": 1, "kind": "like", "rating": 5, "at": "NOW"}], "a rating event gives its rating"),
        ([{"movie_id": 1, "kind": "rating", "rating": 7, "at": "NOW"}], "less than or equal to 5"),
        ([{"movie_id": 1, "kind": "watch", "at": "NOW"}], "Input should be 'like' or 'unlike' or 'rating'"),
        ([{"movie_id": 1, "kind": "like"}], "events.0.at: Field required"),
        ([{"movie_id": 1, "kind": "like", "at": "NOW", "extra": 1}], "Extra inputs"),
        ([{"movie_id": 1, "kind": "like", "at": "NOW"}] * 101, "at most 100 items"),
    ],
)
def test_every_bad_event_is_a_400_saying_what_was_wrong(
    table: Any, lambda_context: Any, events: list[dict[str, Any]], expected: str
) -> None:
    body = {"user_id": 4, "events": [{**e, "at": iso(1)} if e.get("at") == "NOW" else e for e in events]}
    status, answer = post(lambda_context, body)
    assert status == 400 and answer["error"]["code"] == "invalid_request", answer
    assert expected in answer["error"]["message"], answer
    assert table.scan(TableName=table.name)["Count"] == 0


def test_forgetting_a_user_drops_their_events_and_their_trained_profile_at_once(
    table: Any, lambda_context: Any
) -> None:
    user = 5
    post(lambda_context, {"user_id": user, "events": [{"movie_id": 20, "kind": "like", "at": iso(2)}]})
    status, gone = forget(lambda_context, user)
    assert status == 200 and gone["deleted"] == 1 and gone["forgotten_at"].endswith("Z")
    items = table.scan(TableName=table.name)["Items"]
    assert [int(i["movie_id"]["N"]) for i in items] == [TOMBSTONE] and "expires_at" not in items[0]
    # served as someone the model never saw, and no history, until they act again
    assert recommend(lambda_context, user)["fallback"] == "unknown_user"
    assert history(lambda_context, user)[0] == 404
    # training reads the tombstone, and no event of theirs
    assert [(u, e.kind) for u, e in all_events(table, table.name, dt.datetime.now(dt.UTC).timestamp())] == [
        (user, "forget")
    ]


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A DynamoDB endpoint on loopback that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_table_that_does_not_answer_leaves_the_models_answer_marked(
    table: Any, lambda_context: Any, silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table that never answers
    post(lambda_context, {"user_id": 1, "events": [{"movie_id": 2, "kind": "rating", "rating": 1, "at": iso(1)}]})
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", silent_endpoint)
    # THEN reads answer from the model alone, said so; nothing is a 5xx
    answer = recommend(lambda_context, 1)
    assert answer["realtime"] is False and answer["model"] == "personalized" and ids(answer)[0] == 2
    # what bounded the wait: the serving read's deadline, its one retry included
    from recsys.events import READ_DEADLINE_S, serving_log

    client = serving_log().client
    assert client.endpoint == silent_endpoint and client.deadline_s == READ_DEADLINE_S and client.attempts == 2
    status, liked = history(lambda_context, 1)
    assert status == 200 and liked["realtime"] is False
    # and a write is a 503 with a fixed message and a request id
    monkeypatch.setattr(events_app, "_log", None)
    status, body = post(lambda_context, {"user_id": 1, "events": [{"movie_id": 3, "kind": "like", "at": iso(1)}]})
    assert status == 503 and body["error"]["code"] == "events_unavailable" and body["error"]["request_id"]
    assert "127.0.0.1" not in json.dumps(body) and "Timeout" not in json.dumps(body)


def test_the_functions_read_the_table_through_the_projects_own_client(table: Any, lambda_context: Any) -> None:
    from recsys.events import serving_log

    recommend(lambda_context, 1)
    post(lambda_context, {"user_id": 1, "events": [{"movie_id": 3, "kind": "like", "at": iso(1)}]})
    assert isinstance(serving_log().client, DynamoDBClient) and isinstance(events_app.log().client, DynamoDBClient)


def test_a_new_like_lifts_its_item_item_neighbour_for_that_user(table: Any, lambda_context: Any) -> None:
    from recsys.store import open_model

    # GIVEN user 1 of group 0, a movie m of group 1 they never rated, and m's strongest item-item
    # neighbour n (the largest weight in m's row of the served model), also unrated by them
    user = 1
    model = open_model(os.environ["MODEL_URI"])
    unrated = sorted(set(range(13, 25)) - data.rated_by(user))
    m = unrated[0]
    i = model.item_index(m)
    assert i is not None
    row = slice(int(model.item_item_indptr[i]), int(model.item_item_indptr[i + 1]))
    targets, weights = model.item_item_targets[row], model.item_item_weights[row]
    candidates = [(int(w), int(model.item_ids[t])) for t, w in zip(targets, weights, strict=True)
                  if int(model.item_ids[t]) in unrated and int(model.item_ids[t]) != m]  # fmt: skip
    n = max(candidates)[1]
    before = ids(recommend(lambda_context, user))
    # WHEN the site says they liked m
    post(lambda_context, {"user_id": user, "events": [{"movie_id": m, "kind": "like", "at": iso(1)}]})
    after = ids(recommend(lambda_context, user))
    # THEN m is never recommended, and n ranks higher than it did
    assert m in before and m not in after
    assert after.index(n) < before.index(n), (n, before, after)


def test_a_cold_function_reads_the_events_while_its_model_loads(table: Any, lambda_context: Any) -> None:
    from recsys.events import ReadAhead, read_for

    post(lambda_context, {"user_id": 6, "events": [{"movie_id": 5, "kind": "like", "at": iso(1)}]})
    log = EventLog(DynamoDBClient.from_env(os.environ), EventsSettings(table.name))
    # cold: a read under way on a thread of its own, the same answer as reading when asked
    ahead = read_for(log, 6, cold=True)
    assert isinstance(ahead, ReadAhead) and ahead.recent(6) == log.recent(6) and log.recent(6).events
    assert read_for(log, 6, cold=False) is log and read_for(None, 6, cold=True) is None
    # and the function's first answer, made cold, has them
    assert recommend_app.runtime.cold
    answer = recommend(lambda_context, 6)
    assert answer["realtime"] is True and 5 not in ids(answer) and not recommend_app.runtime.cold
