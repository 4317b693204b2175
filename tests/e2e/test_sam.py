"""The real SAM CLI: `sam local invoke` and `sam local start-api` on the emulation image.

The functions run in Docker (devstack.docker builds the image without a registry) and read
the model from moto in a container on a Docker network the session creates. Each answer is
compared with the docker-free invoker's (devstack.invoker) for the same event and model.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.docker import DockerUnavailable
from devstack.dynamodb import EVENTS_TABLE, FEEDBACK_TABLE
from devstack.invoker import Invoker, LambdaContext, sample_event
from devstack.sam import BUCKET, PREFIX, SamStack
from devstack.servers import free_port
from devstack.template import load_application
from recsys.feedback import FeedbackSettings, FeedbackStore
from scripts import openapi
from tests.integration.test_openapi import POSTS, REQUESTS, validate

pytestmark = pytest.mark.sam

ROOT = Path(__file__).resolve().parents[2]
#: The API's sample events (train.json is the schedule's, env.json no event)
EVENTS = sorted(p for p in (ROOT / "events").glob("*.json") if "httpMethod" in json.loads(p.read_text()))


@pytest.fixture(scope="module")
def stack(model_store: Path) -> Iterator[SamStack]:
    try:
        with SamStack(model_store, log=lambda m: print(f"[sam] {m}", file=sys.stderr)) as running:
            yield running
    except DockerUnavailable as exc:
        pytest.skip(f"Docker cannot run on this machine: {exc}")


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path]]:
    """Every sample event, its ids moved to the checkerboard model's, and the function it goes to."""
    folder = tmp_path_factory.mktemp("events")
    routes = {(r.method, r.path): r.function for r in load_application().routes}
    out = {}
    for path in EVENTS:
        event = sample_event(path.stem, 1, 2)
        if event.get("body") and event["resource"] == "/recommendations":
            event["body"] = json.dumps({"liked": [1, 2, 3], "k": 5, "explain": True})
        if event.get("body") and event["resource"] == "/events":  # movie 2 liked by a user of no other event
            now = dt.datetime.now(dt.UTC).isoformat()
            event["body"] = json.dumps({"user_id": 39, "events": [{"movie_id": 2, "kind": "like", "at": now},
                                                                  {"movie_id": 50, "kind": "like", "at": now}]})
        (folder / path.name).write_text(json.dumps(event))
        out[path.stem] = (routes[(event["httpMethod"], event["resource"])], folder / path.name)
    return out


def _comparable(response: dict[str, Any]) -> tuple[int, Any]:
    """Status and body; a 5xx's request id is per invocation, everything else must be equal."""
    body = json.loads(response["body"]) if response.get("body") else None
    if isinstance(body, dict) and "error" in body:
        body["error"].pop("request_id", None)
    return response["statusCode"], body


def test_every_event_answers_as_the_docker_free_invoker_does(
    stack: SamStack, events: dict[str, tuple[str, Path]], model_store: Path
) -> None:
    app = load_application()
    feedback = {"FEEDBACK_TABLE": FEEDBACK_TABLE, "EVENTS_TABLE": EVENTS_TABLE,
                "AWS_ENDPOINT_URL_DYNAMODB": stack.moto_endpoint}  # the same tables
    invoker = Invoker(app, {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*", **feedback})
    assert len(events) >= 10
    # three sam processes at a time: SAM builds a function image once and the others wait for it
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = {name: pool.submit(stack.invoke, function, path) for name, (function, path) in events.items()}
    for name, (function, path) in events.items():
        event = json.loads(path.read_text())
        expected = _comparable(invoker.handler(function)(event, LambdaContext(function)))
        code, response, log = answers[name].result()
        assert code == 0 and response is not None, (name, log[-3000:])
        assert _comparable(response) == expected, name
        assert expected[0] in (200, 204), (name, expected)


def test_an_unreachable_model_store_is_a_503(stack: SamStack, events: dict[str, tuple[str, Path]]) -> None:
    # GIVEN an S3 endpoint that does not resolve on the stack's network
    function, path = events["recommend"]
    code, response, log = stack.invoke(function, path, AWS_ENDPOINT_URL_S3="http://no-such-s3:5000")
    # THEN the function answers (no crash) with the fixed 503 body
    assert code == 0 and response is not None, log[-3000:]
    status, body = _comparable(response)
    assert status == 503 and body["error"]["code"] == "model_unavailable"
    assert "no-such-s3" not in response["body"]


def _request(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_start_api_answers_as_the_openapi_document_says(stack: SamStack) -> None:
    document = json.loads(openapi.DOCUMENT.read_text())
    app = load_application()
    with stack.start_api(free_port()) as api:
        for target, expected in REQUESTS:
            status, headers, body = _request(api + target)
            assert status == expected, (target, status, body[:300])
            route = next(r for r in app.routes if r.method == "GET" and r.pattern.match(target.split("?")[0]))
            validate(document, route.path, status, json.loads(body))
            assert headers.get("Access-Control-Allow-Origin") == "*"
        for payload, request_headers, expected in POSTS:
            status, _, body = _request(api + "/recommendations", "POST", json.dumps(payload).encode(), request_headers)
            assert status == expected, (payload, status, body[:300])
            validate(document, "/recommendations", status, json.loads(body), "post")
        # a CORS preflight reaches the function, which allows the method and the header
        status, headers, _ = _request(api + "/recommendations", "OPTIONS", None, {
            "Origin": "https://site.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        })  # fmt: skip
        assert status == 204
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert headers["Access-Control-Allow-Headers"].lower() == "content-type"


def test_sam_local_invoke_trains_on_the_stack_and_publishes_a_model_counting_the_visitors(
    stack: SamStack, checkerboard_dir: Path
) -> None:
    # GIVEN the base ratings in the stack's S3, a visitor's likes in its table, and a model serving
    s3 = stack.s3()
    for name in ("u.data", "u.item"):
        s3.upload_file(str(checkerboard_dir / name), BUCKET, f"ratings/{name}")
    visitor = str(uuid.uuid4())
    FeedbackStore(stack.client("dynamodb"), FeedbackSettings(FEEDBACK_TABLE)).change(visitor, [13, 14, 15], [])
    serving = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/latest.json")["Body"].read())["version"]
    # WHEN the schedule's event starts TrainFunction's image (the gate is tested in process)
    code, response, log = stack.invoke("TrainFunction", ROOT / "events/train.json",
                                       RATINGS_URI=f"s3://{BUCKET}/ratings/", MAX_VALIDATION_DROP="0.9",
                                       VISITOR_BAND="1")  # fmt: skip
    # THEN it published a new model, which counts the visitor, and the pointer names it
    assert code == 0 and response is not None, log[-3000:]
    assert response["outcome"] == "published" and response["previous"] == serving, response
    pointer = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/latest.json")["Body"].read())
    metrics = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/models/{pointer['version']}/metrics.json")
                         ["Body"].read())  # fmt: skip
    assert pointer["version"] == response["serving"] != serving
    stored = stack.client("dynamodb").scan(TableName=FEEDBACK_TABLE)["Items"]  # this visitor's, the feedback event's
    likes = [i for i in stored if int(i["movie_id"]["N"]) >= 0]
    assert metrics["data"]["visitors"]["visitors"] == len({i["visitor_id"]["S"] for i in likes}) >= 1
    assert metrics["data"]["visitors"]["likes"] == len(likes) >= 3
