"""`recsys.s3` against a fake S3 on loopback that misbehaves: drips, lies about sizes, slows down.

Outcomes only, never wall-clock bounds: a drip ends in a 503 with Retry-After, a size that differs
from the pointer's is refused before the body is read, a SlowDown is retried after a jittered pause.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devstack.invoker import Invoker, LambdaContext, sample_event
from devstack.template import load_application
from recsys.s3 import BACKOFF_BASE_S, BACKOFF_CAP_S, Credentials, Deadline, S3Client, S3Error
from tests import data

pytestmark = pytest.mark.integration

#: A drip-fed body sends one byte this often, and stops by itself after `DRIP_BYTES`.
DRIP_EVERY_S = 0.2
DRIP_BYTES = 200

Behaviour = Callable[[BaseHTTPRequestHandler, bytes], None]


class FakeS3:
    """Serves `files` (key -> bytes) path-style; `behaviour[key]` replaces the answer for a key."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.behaviour: dict[str, Behaviour] = {}
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None: ...

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                key = urllib.parse.unquote(self.path.lstrip("/"))
                fake.requests.append((self.command, key))
                body = fake.files.get(key)
                if key in fake.behaviour:
                    fake.behaviour[key](self, body or b"")
                elif body is None:
                    self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
                else:
                    self._send(200, body, etag=hashlib.md5(body).hexdigest())  # noqa: S324 - S3's ETag

            def do_HEAD(self) -> None:  # noqa: N802
                fake.requests.append((self.command, urllib.parse.unquote(self.path.lstrip("/"))))
                self._send(200, b"")

            def _send(self, status: int, body: bytes, etag: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", f'"{etag}"')
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def drip(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """The true size in the headers, then one byte every DRIP_EVERY_S until the client hangs up."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    try:
        for i in range(min(len(body), DRIP_BYTES)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            time.sleep(DRIP_EVERY_S)
    except OSError:
        return  # the client gave up: what the deadline is for


def huge_length(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """Claims a gigabyte; sends nothing of it (a reader that trusts the header waits or runs out of memory)."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(10**9))
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True


def cut_short(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """The true size in the headers, half the body, then the connection closed."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    handler.close_connection = True


def slow_down(times: int) -> Behaviour:
    """S3's 503 SlowDown for the first `times` requests, then the object."""
    left = [times]

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if left[0] > 0:
            left[0] -= 1
            handler._send(503, b"<Error><Code>SlowDown</Code><Message>Reduce your request rate</Message></Error>")  # type: ignore[attr-defined]
        else:
            handler._send(200, body)  # type: ignore[attr-defined]

    return answer


@pytest.fixture
def fake_s3() -> Iterator[FakeS3]:
    fake = FakeS3({})
    yield fake
    fake.close()


def _client(fake: FakeS3, pauses: list[float] | None = None, attempts: int = 3) -> S3Client:
    sleep = (lambda s: pauses.append(s)) if pauses is not None else time.sleep
    return S3Client(Credentials("testing", "testing"), "us-east-1", fake.endpoint, timeout=1.0, attempts=attempts,
                    sleep=sleep)  # fmt: skip


def test_a_drip_fed_body_meets_the_deadline(fake_s3: FakeS3) -> None:
    # GIVEN an object that arrives one byte at a time, each well within the socket timeout
    fake_s3.files["b/k"] = b"x" * 1000
    fake_s3.behaviour["b/k"] = drip
    # WHEN it is read under a deadline THEN the read gives up with DeadlineExceeded, not a body
    with pytest.raises(S3Error) as failed:
        _client(fake_s3).get("b", "k", size=1000, deadline=Deadline(0.6))
    assert failed.value.code == "DeadlineExceeded"


def test_a_body_cut_short_is_retried_and_refused_never_padded(fake_s3: FakeS3) -> None:
    # GIVEN an object whose connection closes halfway through the announced (and expected) size
    fake_s3.files["b/k"] = b"x" * 100_000
    fake_s3.behaviour["b/k"] = cut_short
    # WHEN it is read THEN every attempt fails on the short body, and no body is returned
    with pytest.raises(S3Error) as failed:
        _client(fake_s3, pauses=[]).get("b", "k", size=100_000)
    assert failed.value.code == "IncompleteRead"
    assert fake_s3.requests == [("GET", "b/k")] * 3


def test_a_size_other_than_the_pointers_is_refused_before_the_body(fake_s3: FakeS3) -> None:
    # GIVEN an object whose Content-Length is a gigabyte, and a pointer that says 100 bytes
    fake_s3.files["b/k"] = b""
    fake_s3.behaviour["b/k"] = huge_length
    # WHEN it is read THEN it is refused at once, from the header (the body never comes)
    with pytest.raises(S3Error) as failed:
        _client(fake_s3).get("b", "k", size=100, deadline=Deadline(30))
    assert failed.value.code == "SizeMismatch"
    # AND an object of unknown size over the read's limit is refused the same way
    with pytest.raises(S3Error) as failed:
        _client(fake_s3).get("b", "k", limit=64 * 1024, deadline=Deadline(30))
    assert failed.value.code == "TooLarge"


def test_slow_down_is_retried_after_a_jittered_backoff(fake_s3: FakeS3) -> None:
    # GIVEN S3 answering SlowDown twice, then the object
    fake_s3.files["b/k"] = b"payload"
    fake_s3.behaviour["b/k"] = slow_down(2)
    pauses: list[float] = []
    # WHEN it is read with three attempts THEN the third gets it, after two pauses within the backoff
    assert _client(fake_s3, pauses).get("b", "k").body == b"payload"
    assert len(pauses) == 2
    for attempt, pause in enumerate(pauses, start=1):
        assert 0 <= pause <= min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
    # AND with fewer attempts than SlowDowns, the read fails with S3's own code
    fake_s3.behaviour["b/k"] = slow_down(5)
    with pytest.raises(S3Error) as failed:
        _client(fake_s3, [], attempts=2).get("b", "k")
    assert (failed.value.status, failed.value.code) == (503, "SlowDown")


def test_no_retry_waits_past_the_deadline(fake_s3: FakeS3) -> None:
    # GIVEN S3 answering SlowDown, and a deadline already nearly spent
    fake_s3.files["b/k"] = b"payload"
    fake_s3.behaviour["b/k"] = slow_down(10)
    pauses: list[float] = []
    # WHEN it is read THEN it fails without pausing beyond what the deadline leaves
    with pytest.raises(S3Error):
        _client(fake_s3, pauses, attempts=10).get("b", "k", deadline=Deadline(0.05))
    assert sum(pauses) <= 0.05


@pytest.fixture
def published(fake_s3: FakeS3, checkerboard_dir: Path, tmp_path: Path) -> FakeS3:
    """The checkerboard model, published by the real training job and served by the fake S3."""
    store = tmp_path / "store"
    assert data.train(checkerboard_dir, str(store)) == 0
    for path in store.rglob("*"):
        if path.is_file():
            fake_s3.files[f"models-bucket/recommender/{path.relative_to(store)}"] = path.read_bytes()
    return fake_s3


def _invoke(fake: FakeS3, function: str, **env: str) -> dict[str, Any]:
    app = load_application()
    invoker = Invoker(app, {"MODEL_URI": "s3://models-bucket/recommender", "AWS_ENDPOINT_URL_S3": fake.endpoint,
                            "ALLOWED_ORIGIN": "*", **env}, functions=[function])  # fmt: skip
    name = function.removesuffix("Function").lower()
    return invoker.handler(function)(sample_event(name, 1, 1), LambdaContext(function))  # type: ignore[no-any-return]


def test_a_drip_fed_part_gives_a_503_with_retry_after(published: FakeS3) -> None:
    # GIVEN a store whose catalog part S3 drips, one byte at a time
    pointer = json.loads(published.files["models-bucket/recommender/latest.json"])
    catalog = f"models-bucket/recommender/{pointer['parts']['catalog']['key']}"
    published.behaviour[catalog] = drip
    # WHEN a cold function answers its first request, under a 1 s load deadline
    response = _invoke(published, "SimilarFunction", MODEL_LOAD_DEADLINE_SECONDS="1")
    # THEN the visitor gets a 503 with Retry-After, and the function made only GETs
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    assert json.loads(response["body"])["error"]["code"] == "model_unavailable"
    assert {method for method, _ in published.requests} == {"GET"}


def test_an_endpoint_without_etags_still_serves(published: FakeS3) -> None:
    # GIVEN an S3-compatible endpoint that sends no ETag (the fake sends one only for plain GETs)
    pointer_key = "models-bucket/recommender/latest.json"
    published.behaviour[pointer_key] = lambda h, body: h._send(200, body)  # type: ignore[attr-defined]
    # WHEN a function loads from it THEN it answers
    assert _invoke(published, "SimilarFunction")["statusCode"] == 200
