"""POST /feedback and DELETE /feedback/{visitor_id}, through FeedbackFunction's handler, against a
moto DynamoDB server: retries store nothing twice, the cap holds, forgetting removes every item,
expired likes stop counting, and every bad request is a 400."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.dynamodb import create_feedback_table
from functions.feedback import app as feedback_app
from recsys.dynamodb import DynamoDBClient
from recsys.errors import ForgottenVisitorError, LimitExceededError
from recsys.feedback import COUNTER, SHOWN, TOMBSTONE, FeedbackSettings, FeedbackStore, Source, live_likes
from recsys.runtime import Runtime
from tests.conftest import load_event
from tests.load import DynamoProxy

pytestmark = pytest.mark.integration

ORIGIN = "https://site.example"


@pytest.fixture
def dynamodb(moto_endpoint: str) -> Any:
    """A moto DynamoDB client and a fresh feedback table (its name on the client's `table`)."""
    os.environ.update(AWS_ENDPOINT_URL=moto_endpoint, AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint)
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.table = create_feedback_table(client, f"feedback-{uuid.uuid4().hex[:12]}")
    return client


@pytest.fixture
def served(model_store: Path, dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    os.environ.update(MODEL_URI=str(model_store), ALLOWED_ORIGIN=ORIGIN, FEEDBACK_TABLE=dynamodb.table, LIKE_CAP="10")
    monkeypatch.setattr(feedback_app, "runtime", Runtime(parts=feedback_app.MODEL_PARTS))
    monkeypatch.setattr(feedback_app, "_store", None)
    return dynamodb


@pytest.fixture(params=["recsys", "boto3"])
def client(request: pytest.FixtureRequest, served: Any) -> Any:
    """A client of the feedback table: the project's own (`recsys.dynamodb`, what Lambda runs) or boto3's."""
    return DynamoDBClient.from_env(os.environ) if request.param == "recsys" else served


def visitor() -> str:
    return str(uuid.uuid4())


def call(ctx: Any, method: str, body: Any = None, path: str = "/feedback", content_type: str = "application/json",
         ) -> tuple[int, dict[str, Any]]:  # fmt: skip
    event = load_event("feedback")
    event.update(httpMethod=method, path=path, headers={"Origin": ORIGIN, "Content-Type": content_type})
    event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
    response = feedback_app.lambda_handler(event, ctx)
    headers = {k: v[-1] for k, v in response.get("multiValueHeaders", {}).items()}
    assert headers.get("Access-Control-Allow-Origin") == ORIGIN  # errors too
    return response["statusCode"], json.loads(response["body"])


def items_of(client: Any, who: str) -> dict[int, dict[str, Any]]:
    """Every item the table holds for `who`, by movie id (the counter at COUNTER)."""
    found = client.query(TableName=client.table, KeyConditionExpression="visitor_id = :v",
                         ExpressionAttributeValues={":v": {"S": who}}, ConsistentRead=True)["Items"]  # fmt: skip
    return {int(i["movie_id"]["N"]): i for i in found}


def test_a_like_is_stored_once_however_often_the_request_is_repeated(served: Any, lambda_context: Any) -> None:
    who = visitor()
    answers = [call(lambda_context, "POST", {"visitor_id": who, "like": [3, 1, 2, 1]}) for _ in range(3)]
    assert all(status == 200 for status, _ in answers)
    # through the project's own client (Lambda's kind of credentials are in the environment), not boto3
    assert isinstance(feedback_app.store().client, DynamoDBClient)
    assert [body["likes"] for _, body in answers] == [3, 3, 3]
    stored = items_of(served, who)
    assert sorted(stored) == [COUNTER, 1, 2, 3] and stored[COUNTER]["likes"]["N"] == "3"
    # the retried request wrote nothing: the counter's version is the first request's
    assert stored[COUNTER]["version"]["N"] == "1"
    # AND an unlike removes exactly that like, also once
    for _ in range(2):
        status, body = call(lambda_context, "POST", {"visitor_id": who, "unlike": [2]})
        assert status == 200 and body["likes"] == 2 and body["unliked"] == [2]
    assert sorted(items_of(served, who)) == [COUNTER, 1, 3]


def test_unknown_movies_are_listed_and_not_stored(served: Any, lambda_context: Any) -> None:
    who = visitor()
    status, body = call(lambda_context, "POST", {"visitor_id": who, "like": [1, 999999], "unlike": [888888]})
    assert status == 200 and body["liked"] == [1] and body["ignored"] == [888888, 999999] and body["likes"] == 1
    assert sorted(items_of(served, who)) == [COUNTER, 1]
    # a movie both liked and unliked in one request ends unliked
    status, body = call(lambda_context, "POST", {"visitor_id": who, "like": [2, 3], "unlike": [3, 1]})
    assert status == 200 and body["liked"] == [2] and body["unliked"] == [3, 1] and body["likes"] == 1
    assert sorted(items_of(served, who)) == [COUNTER, 2]


def test_the_cap_holds_and_a_refused_request_stores_nothing(served: Any, lambda_context: Any) -> None:
    # GIVEN a cap of 10 (LIKE_CAP) and a visitor with 6 likes
    who = visitor()
    assert call(lambda_context, "POST", {"visitor_id": who, "like": list(range(1, 7))})[0] == 200
    # WHEN a request takes them to 9 (it names 5, of which 2 are liked already)
    status, body = call(lambda_context, "POST", {"visitor_id": who, "like": [5, 6, 7, 8, 9]})
    assert status == 200 and body["likes"] == 9
    # AND one would take them past 10
    status, body = call(lambda_context, "POST", {"visitor_id": who, "like": [10, 11]})
    # THEN it is refused with a 409 that says why, and nothing of it is stored
    assert status == 409 and body["error"]["code"] == "like_cap" and "at most 10" in body["error"]["message"]
    assert sorted(items_of(served, who)) == [COUNTER, *range(1, 10)]
    # AND an unlike and the likes in one request fit where the likes alone did not
    status, body = call(lambda_context, "POST", {"visitor_id": who, "like": [10, 11], "unlike": [2]})
    assert status == 200 and body["likes"] == 10


def test_concurrent_requests_of_one_visitor_never_pass_the_cap(served: Any) -> None:
    # GIVEN one visitor and 24 movies, liked by 24 threads at once, with a cap of 10
    from concurrent.futures import ThreadPoolExecutor

    proxy = DynamoProxy(os.environ["AWS_ENDPOINT_URL_DYNAMODB"])  # moto, one transaction at a time, as DynamoDB
    client = boto3.client("dynamodb", endpoint_url=proxy.endpoint, region_name="us-east-1")
    store = FeedbackStore(client, FeedbackSettings(served.table, like_cap=10))
    who = visitor()

    def like(movie: int) -> bool:
        try:
            store.change(who, [movie], [])
        except Exception:  # refused (the cap) or gave up (contention): not stored
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        accepted = [m for m, ok in zip(range(1, 25), pool.map(like, range(1, 25)), strict=True) if ok]
    proxy.close()
    # THEN at most 10 are stored, every acknowledged one among them, and the counter says how many
    stored = items_of(served, who)
    likes = sorted(m for m in stored if m != COUNTER)
    assert len(likes) <= 10 and set(accepted) <= set(likes)
    assert int(stored[COUNTER]["likes"]["N"]) == len(likes)


def test_forget_me_deletes_every_item_of_the_visitor_only(served: Any, lambda_context: Any) -> None:
    who, other = visitor(), visitor()
    for v in (who, other):
        assert call(lambda_context, "POST", {"visitor_id": v, "like": [1, 2, 3]})[0] == 200
    status, body = call(lambda_context, "DELETE", path=f"/feedback/{who}")
    assert status == 200 and body == {"visitor_id": who, "deleted": 3}
    assert sorted(items_of(served, who)) == [TOMBSTONE] and sorted(items_of(served, other)) == [COUNTER, 1, 2, 3]
    # forgetting twice is fine
    assert call(lambda_context, "DELETE", path=f"/feedback/{who}") == (200, {"visitor_id": who, "deleted": 0})
    # AND the id takes no more likes: not the first request again (whose idempotency token, on AWS,
    # would not match its new content), nor any other; the page makes a new id
    for body in ({"visitor_id": who, "like": [1, 2, 3]}, {"visitor_id": who, "like": [4]}):
        status, answer = call(lambda_context, "POST", body)
        assert status == 410 and answer["error"]["code"] == "visitor_forgotten"
        assert "forgotten" in answer["error"]["message"]
    assert sorted(items_of(served, who)) == [TOMBSTONE]


def test_a_like_sent_while_forget_runs_is_refused_not_left_behind(served: Any, client: Any) -> None:
    # GIVEN a visitor with likes, and a send that lands between forget's query and its deletes
    settings = FeedbackSettings(served.table)
    who = visitor()
    FeedbackStore(client, settings).change(who, [1, 2], [])
    refused: list[Exception] = []

    class SendsMidway(FeedbackStore):
        def _query(self, visitor: str, projection: str | None = None) -> Any:
            found = list(super()._query(visitor, projection))
            if projection and not refused:  # forget's query: the other request lands now
                with pytest.raises(ForgottenVisitorError) as caught:
                    FeedbackStore(client, settings).change(who, [7], [])
                refused.append(caught.value)
            return iter(found)

    # WHEN the visitor is forgotten
    assert SendsMidway(client, settings).forget(who) == 2
    # THEN the send was refused, and nothing of the visitor is left to train on
    assert refused and sorted(items_of(served, who)) == [TOMBSTONE]
    assert all(x.movie_id == TOMBSTONE for x in live_likes(served, served.table, 0) if x.visitor_id == who)


def test_a_send_that_read_before_forget_cannot_write_after_it(served: Any, client: Any) -> None:
    # GIVEN a change that has read the visitor, and a forget that lands before its write
    settings = FeedbackSettings(served.table)
    who = visitor()
    FeedbackStore(client, settings).change(who, [1], [])
    forgotten: list[int] = []

    class ForgottenMidway(FeedbackStore):
        def _read(self, visitor: str, now: int) -> Any:
            seen = super()._read(visitor, now)
            if not forgotten:
                forgotten.append(FeedbackStore(client, settings).forget(who))
            return seen

    # WHEN it writes: the tombstone's check fails it, and its retry finds the tombstone
    with pytest.raises(ForgottenVisitorError):
        ForgottenMidway(client, settings).change(who, [5], [])
    assert forgotten == [1] and sorted(items_of(served, who)) == [TOMBSTONE]


def test_an_unlike_always_passes_the_cap_even_after_the_cap_was_lowered(served: Any, client: Any) -> None:
    # GIVEN a visitor holding 5 likes, and then the cap lowered to 2
    who = visitor()
    FeedbackStore(client, FeedbackSettings(served.table, like_cap=10)).change(who, [1, 2, 3, 4, 5], [])
    lowered = FeedbackStore(client, FeedbackSettings(served.table, like_cap=2))
    # THEN an unlike is stored, though 4 likes are still over the cap
    assert lowered.change(who, [], [3]) == 4
    # AND a like is still refused while over the cap, even one paired with an unlike
    with pytest.raises(LimitExceededError):
        lowered.change(who, [6], [4])
    assert lowered.likes(who) == [1, 2, 4, 5]


def test_expired_likes_stop_counting_and_training_never_reads_them(served: Any, client: Any) -> None:
    # GIVEN likes kept 10 days, made on day 0 and on day 8 (DynamoDB may not have deleted any yet)
    now = [1_000_000.0]
    store = FeedbackStore(client, FeedbackSettings(served.table, like_cap=3, retention_seconds=10 * 86400),
                          clock=lambda: now[0])  # fmt: skip
    who = visitor()
    store.change(who, [1, 2], [])
    now[0] += 8 * 86400
    store.change(who, [3], [])
    # WHEN day 11 comes: the first two have expired, though still in the table
    now[0] += 3 * 86400
    assert len(items_of(served, who)) == 4
    # THEN training reads only the live one, and the cap counts only it: two more fit
    assert [(x.movie_id, x.liked_at) for x in live_likes(client, served.table, now[0]) if x.visitor_id == who] == [
        (3, 1_000_000 + 8 * 86400)
    ]
    assert store.change(who, [1, 4], []) == 3
    assert store.likes(who) == [1, 3, 4]


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    ({"visitor_id": "not-a-uuid", "like": [1]}, "application/json", "visitor_id: String should match"),
    ({"visitor_id": str(uuid.uuid1()), "like": [1]}, "application/json", "visitor_id: String should match"),
    ({"visitor_id": str(uuid.uuid4()).upper(), "like": [1]}, "application/json", "visitor_id"),
    ({"like": [1]}, "application/json", "visitor_id: Field required"),
    ({"visitor_id": str(uuid.uuid4()), "like": list(range(1, 50))}, "application/json", "at most 48 items"),
    ({"visitor_id": str(uuid.uuid4()), "like": ["1"]}, "application/json", "like.0: Input should be a valid integer"),
    ({"visitor_id": str(uuid.uuid4()), "like": [-1]}, "application/json", "greater than or equal to 0"),
    ({"visitor_id": str(uuid.uuid4()), "ip": "1.2.3.4"}, "application/json", "ip: Extra inputs are not permitted"),
    ({"visitor_id": str(uuid.uuid4()), "like": [1], "picked": [{"movie_id": 1, "list": "trending",
      "model_version": "v", "position": 1}]}, "application/json", "picked.0.list"),
    ({"visitor_id": str(uuid.uuid4()), "shown": [{"list": "taste", "model_version": "v", "picks": 0}]},
     "application/json", "shown.0.picks"),
    ({"visitor_id": str(uuid.uuid4()), "shown": [{"list": "taste", "model_version": "../x", "picks": 1}]},
     "application/json", "shown.0.model_version"),
    ({"visitor_id": str(uuid.uuid4())}, "text/plain", "application/json"),
    ("x" * 40000, "application/json", "over 32 KiB"),
    ("{", "application/json", "not JSON"),
], ids=["not-uuid", "uuid1", "uppercase", "no-visitor", "too-many", "string-id", "negative", "extra-key",
        "unknown-list", "no-picks", "bad-version", "content-type", "too-large",
        "not-json"])  # fmt: skip
def test_every_bad_request_is_a_400_saying_what_was_wrong(
    served: Any, lambda_context: Any, body: Any, content_type: str, expected: str
) -> None:
    status, answer = call(lambda_context, "POST", body, content_type=content_type)
    assert status == 400 and answer["error"]["code"] == "invalid_request" and expected in answer["error"]["message"]
    assert served.scan(TableName=served.table)["Count"] == 0


def test_forgetting_a_malformed_visitor_is_a_400(served: Any, lambda_context: Any) -> None:
    status, body = call(lambda_context, "DELETE", path="/feedback/..%2F..")
    assert status == 400 and "visitor_id" in body["error"]["message"]


def test_a_table_that_does_not_answer_is_a_503_with_a_fixed_message(
    served: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table name that does not exist (DynamoDB answers ResourceNotFoundException)
    monkeypatch.setenv("FEEDBACK_TABLE", "no-such-table")
    status, body = call(lambda_context, "POST", {"visitor_id": visitor(), "like": [1]})
    assert status == 503 and body["error"]["code"] == "feedback_unavailable" and body["error"]["request_id"]
    assert "no-such-table" not in json.dumps(body) and "Resource" not in json.dumps(body)


def test_a_liked_pick_keeps_where_it_was_shown_and_shown_picks_are_counted_for_the_serving_model(
    served: Any, lambda_context: Any
) -> None:
    # GIVEN the serving model's version, and a visitor shown picks of it and of an older page's model
    version = feedback_app.runtime.model().version
    who = visitor()
    body = {"visitor_id": who, "like": [1, 2, 3],
            "picked": [{"movie_id": 2, "list": "taste", "model_version": version, "position": 4},
                       {"movie_id": 2, "list": "similar", "model_version": version, "position": 8},
                       {"movie_id": 7, "list": "taste", "model_version": version, "position": 1},
                       {"movie_id": 3, "list": "similar", "model_version": "19990101T000000Z-old", "position": 1}],
            "shown": [{"list": "taste", "model_version": version, "picks": 10},
                      {"list": "similar", "model_version": version, "picks": 12},
                      {"list": "taste", "model_version": version, "picks": 5},
                      {"list": "taste", "model_version": "19990101T000000Z-old", "picks": 99}]}  # fmt: skip
    status, answer = call(lambda_context, "POST", body)
    # THEN the likes are stored, the liked pick with its list, version and place (its first entry;
    # an entry for a movie not liked here is ignored), and the serving model's shown picks are
    # counted; the old page's are not
    assert status == 200 and answer["likes"] == 3 and answer["shown"] == 27
    stored = items_of(served, who)
    assert sorted(stored) == [SHOWN, COUNTER, 1, 2, 3]
    assert {k: stored[2][k] for k in ("list", "model_version", "position")} == {
        "list": {"S": "taste"}, "model_version": {"S": version}, "position": {"N": "4"}}
    assert "list" not in stored[1] and "list" not in stored[3] and 7 not in stored
    # AND more picks add to the counts; a like sent again keeps where it first came from
    again = {"visitor_id": who, "like": [2], "picked": [{"movie_id": 2, "list": "similar", "model_version": version,
             "position": 9}], "shown": [{"list": "taste", "model_version": version, "picks": 3}]}  # fmt: skip
    assert call(lambda_context, "POST", again)[1]["likes"] == 3
    read = {(x.movie_id): x for x in live_likes(served, served.table, 0) if x.visitor_id == who}
    assert read[SHOWN].shown == {(version, "taste"): 18, (version, "similar"): 12}
    assert read[2].source == Source("taste", version, 4) and read[1].source is None and read[3].source is None
    # AND the visitor's likes are their likes alone, and forgetting deletes the counts too
    assert feedback_app.store().likes(who) == [1, 2, 3]
    assert call(lambda_context, "DELETE", path=f"/feedback/{who}")[1]["deleted"] == 3
    assert sorted(items_of(served, who)) == [TOMBSTONE]
