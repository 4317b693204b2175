"""The events API over HTTP, through the local gateway (`scripts.localstack serve`): the AWS_IAM
routes take what a standard SigV4 client (botocore) signs with the local stack's test
credentials, refuse anything else with API Gateway's 403, and what they store is in the user's
next answer."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack import demo
from devstack.servers import stop
from tests import data
from tests.conftest import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api(model_store: Path, feedback_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.localstack", "serve", "--model-uri", str(model_store), "--api-port",
         str(port), "--dynamodb-endpoint", feedback_env["AWS_ENDPOINT_URL_DYNAMODB"],
         "--feedback-table", feedback_env["FEEDBACK_TABLE"]],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("READY")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def send(url: str, method: str, body: Any = None, secret: str | None = "testing",
         tamper: bytes | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """A request, signed by botocore's SigV4 with key "testing" and `secret` (None: unsigned); with
    `tamper`, that body is sent instead of the signed one."""
    data_ = None if body is None else json.dumps(body).encode()
    request = AWSRequest(method=method, url=url, data=data_, headers={"Content-Type": "application/json"})
    if secret is not None:
        SigV4Auth(Credentials("testing", secret), "execute-api", "us-east-1").add_auth(request)
    sent = urllib.request.Request(url, data=tamper or data_, method=method, headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def test_an_unsigned_or_wrongly_signed_request_gets_api_gateways_403(api: str) -> None:
    body = {"user_id": 1, "events": [{"movie_id": 2, "kind": "rating", "rating": 1, "at": now()}]}
    status, answer = send(f"{api}/events", "POST", body, secret=None)
    assert (status, answer) == (403, {"error": {"code": "gateway", "message": "Missing Authentication Token"}})
    status, answer = send(f"{api}/events", "POST", body, secret="wrong")
    assert status == 403 and answer["error"]["message"].startswith("The request signature we calculated")
    tampered = json.dumps({**body, "user_id": 3}).encode()
    assert send(f"{api}/events", "POST", body, tamper=tampered)[0] == 403
    assert send(f"{api}/users/1/events", "DELETE", secret=None)[0] == 403
    # nothing of it was stored: user 1's unrated movie is still their first pick
    status, picks = send(f"{api}/recommendations/1", "GET", secret=None)
    assert status == 200 and picks["items"][0]["movie_id"] == 2


def test_a_signed_event_is_in_the_users_next_answer_and_forgetting_undoes_it(api: str) -> None:
    # GIVEN user 7, whose unrated movie the model recommends first
    user = 7
    unseen = 1 + user % data.ITEMS_PER_GROUP
    assert send(f"{api}/recommendations/{user}", "GET", secret=None)[1]["items"][0]["movie_id"] == unseen
    # WHEN the site's backend signs that they rated it 1
    status, stored = send(f"{api}/events", "POST",
                          {"user_id": user, "events": [{"movie_id": unseen, "kind": "rating", "rating": 1,
                                                        "at": now()}]})  # fmt: skip
    assert status == 200 and stored["stored"] == [unseen]
    # THEN the public route, unsigned, no longer recommends it
    status, picks = send(f"{api}/recommendations/{user}", "GET", secret=None)
    assert status == 200 and picks["realtime"] is True and unseen not in [i["movie_id"] for i in picks["items"]]
    # and forgetting them (signed) drops their trained profile too
    status, gone = send(f"{api}/users/{user}/events", "DELETE")
    assert status == 200 and gone["deleted"] == 1
    assert send(f"{api}/recommendations/{user}", "GET", secret=None)[1]["fallback"] == "unknown_user"


def test_the_demos_event_command_signs_a_like_of_the_top_pick_and_the_next_picks_drop_it(api: str) -> None:
    # GIVEN user 12 of the running stack, whose first pick is their unrated movie
    user = 12
    # WHEN `make event USER_ID=12` signs a like of it, as the site's backend would
    shown = demo.send_event(api, user)
    # THEN the stack stored it and the very next picks no longer hold it
    top = shown["before"][0]
    assert top == 1 + user % data.ITEMS_PER_GROUP and shown["events"]["stored"] == [top]
    assert shown["realtime"] is True  # an answer whose events read passed its deadline under load is asked again
    assert top not in shown["after"] and len(shown["after"]) == len(shown["before"])
