"""The cold path as deployed: S3 reads without boto3, its fallback, and X-Ray on and off.

The subprocess tests start a fresh interpreter per function, as a Lambda cold start does, so that
what gets imported is what a container imports.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench import coldstart
from devstack.invoker import sample_event
from recsys.config import Settings
from recsys.errors import ModelUnavailableError
from recsys.s3 import ContainerCredentials, S3Client, S3Error
from recsys.store import Boto3Objects, ModelStore, reader_for, s3_client
from recsys.uri import ModelUri
from tests import data

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("history", "recommend", "similar")


def test_s3_client_reads_what_boto3_wrote(s3) -> None:  # type: ignore[no-untyped-def]
    # GIVEN an object written through boto3 on the moto server
    s3.put_object(Bucket=s3.bucket, Key="p/a b+c.bin", Body=b"\x00bytes\xff" * 1000)
    client = s3_client()
    # WHEN our client reads it THEN bytes and ETag agree with boto3's
    assert isinstance(client, S3Client)
    got = client.get(s3.bucket, "p/a b+c.bin")
    assert got.body == b"\x00bytes\xff" * 1000
    assert got.etag == s3.head_object(Bucket=s3.bucket, Key="p/a b+c.bin")["ETag"]


def test_s3_client_reports_s3s_error_code(s3) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(S3Error) as missing:
        s3_client().get(s3.bucket, "no/such/key")
    assert (missing.value.status, missing.value.code) == (404, "NoSuchKey")
    reader = reader_for(ModelUri.parse(f"s3://{s3.bucket}/no"))
    with pytest.raises(ModelUnavailableError, match="NoSuchKey"):
        reader.read("latest.json")


def test_without_environment_credentials_boto3_reads_the_model(s3, checkerboard_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a model on S3 and credentials only in a profile file, as on a developer's machine
    uri = f"s3://{s3.bucket}/recommender"
    assert data.train(checkerboard_dir, uri) == 0
    profile = tmp_path / "credentials"
    profile.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(profile)
    # WHEN a store loads it THEN boto3 is the client, and the model loads
    store = ModelStore(Settings(ModelUri.parse(uri)), parts=("catalog",))
    assert store.get().n_items == data.GROUPS * data.ITEMS_PER_GROUP
    assert isinstance(store.reader.client, Boto3Objects)  # type: ignore[attr-defined]


def _cold_start(function: str, uri: str, tmp_path: Path, extra: dict[str, str]) -> dict[str, Any]:
    """One cold start of `function` in a fresh interpreter (`bench.coldstart`): status and SDK modules."""
    event = tmp_path / f"{function}.json"
    event.write_text(json.dumps(sample_event(function, 1, 1)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "_X_AMZN"))}
    env.update(PYTHONPATH=f"{ROOT}:{ROOT / 'layers/recsys'}", MODEL_URI=uri, POWERTOOLS_SERVICE_NAME=function,
               POWERTOOLS_METRICS_DISABLED="true", **extra)  # fmt: skip
    cmd = [sys.executable, "-m", "bench.coldstart", "child", f"functions.{function}.app", str(event)]
    return coldstart.run_once(cmd, env)[1]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_tracing_off_imports_neither_xray_nor_boto3(  # type: ignore[no-untyped-def]
    s3, checkerboard_dir: Path, function: str, tmp_path: Path
) -> None:
    uri = f"s3://{s3.bucket}/recommender"
    assert data.train(checkerboard_dir, uri) == 0
    result = _cold_start(function, uri, tmp_path, {"POWERTOOLS_TRACE_DISABLED": "true"})
    assert result["status"] == 200
    # no AWS SDK module at all: no boto3, no botocore, no X-Ray SDK (powertools, gone from the
    # layer, imported botocore's top package for its user agent)
    assert result["modules"] == []


def test_feedback_stores_a_visitors_likes_without_boto3(  # type: ignore[no-untyped-def]
    s3, moto_endpoint: str, checkerboard_dir: Path, tmp_path: Path
) -> None:
    # GIVEN the model on S3 and the feedback table on moto
    import boto3

    from devstack.dynamodb import create_feedback_table

    uri = f"s3://{s3.bucket}/recommender"
    assert data.train(checkerboard_dir, uri) == 0
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    table = create_feedback_table(dynamodb, f"feedback-{tmp_path.name[-12:]}")
    # WHEN FeedbackFunction starts cold and stores the sample event's likes (a query and a transaction)
    result = _cold_start("feedback", uri, tmp_path, {"POWERTOOLS_TRACE_DISABLED": "true", "FEEDBACK_TABLE": table,
                                                      "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint})  # fmt: skip
    # THEN it answered without importing any AWS SDK module, and the likes are in the table
    assert result["status"] == 200 and result["modules"] == []
    visitor = json.loads(sample_event("feedback", 1, 1)["body"])["visitor_id"]
    items = dynamodb.query(TableName=table, KeyConditionExpression="visitor_id = :v",
                           ExpressionAttributeValues={":v": {"S": visitor}})["Items"]  # fmt: skip
    assert any(int(item["movie_id"]["N"]) == 1 for item in items)


def test_tracing_on_sends_the_handler_and_each_s3_read_to_xray(
    s3,
    checkerboard_dir: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    # GIVEN a daemon address that this test listens on (UDP on loopback) and Lambda's environment
    uri = f"s3://{s3.bucket}/recommender"
    assert data.train(checkerboard_dir, uri) == 0
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    request.addfinalizer(daemon.close)
    daemon.bind(("127.0.0.1", 0))
    lambda_env = {
        **coldstart.LAMBDA_ENV, "LAMBDA_TASK_ROOT": str(ROOT / "functions/similar"),
        "AWS_LAMBDA_FUNCTION_NAME": "SimilarFunction",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
    }  # fmt: skip
    # WHEN the function starts cold and answers
    result = _cold_start("similar", uri, tmp_path, lambda_env)
    assert result["status"] == 200
    # no X-Ray SDK (end of support 2027-02-25), no boto3 or botocore: recsys.tracing sends the subsegments
    assert not [m for m in result["modules"] if m.startswith(("aws_xray_sdk.core", "boto3", "botocore."))], result
    # THEN X-Ray got the handler's subsegment and one per S3 request (pointer, three parts): no HEAD,
    # since the pointer's tag is taken from the GET that read it
    segments: dict[str, dict] = {}  # by id: a subsegment may be sent in progress, then complete
    daemon.setblocking(False)
    while True:
        try:
            packet = daemon.recv(65536)
        except BlockingIOError:
            break
        segment = json.loads(packet.split(b"\n", 1)[1])
        segments[segment["id"]] = segment
    names = [s["name"] for s in segments.values()]
    assert "## lambda_handler" in names
    s3_calls = {(s["http"]["request"]["method"], s["http"]["request"]["url"].split("/recommender/")[1])
                for s in segments.values()
                if s.get("namespace") == "remote" and s["http"]["request"]["method"] != "READ"}  # fmt: skip
    version = next(s for s in s3_calls if s[1].startswith("models/"))[1].split("/")[1]
    assert s3_calls == {
        ("GET", "latest.json"),
        *(("GET", f"models/{version}/{part}.pkl") for part in ("catalog", "item_vectors", "neighbours")),
    }
    # AND every subsegment is of the invocation's trace: the handler's under Lambda's segment (the
    # header's Parent), each S3 read under the handler's, answered 200, inside the handler's time
    root, parent = (dict(p.split("=") for p in coldstart.LAMBDA_ENV["_X_AMZN_TRACE_ID"].split(";"))[k]
                    for k in ("Root", "Parent"))  # fmt: skip
    handler = next(s for s in segments.values() if s["name"] == "## lambda_handler")
    assert {s["trace_id"] for s in segments.values()} == {root} and handler["parent_id"] == parent
    assert handler["annotations"]["ColdStart"] is True
    for s in segments.values():
        if s.get("namespace") == "remote":
            assert s["parent_id"] == handler["id"] and s["http"]["response"]["status"] == 200
            assert handler["start_time"] <= s["start_time"] <= s["end_time"] <= handler["end_time"]


class CredentialsEndpoint:
    """Lambda's container credentials endpoint on loopback: what SnapStart functions get instead of
    keys in the environment. Answers keys that expire `ttl` after `now()`; records each request's token."""

    def __init__(self, now: Any, ttl: dt.timedelta) -> None:
        self.tokens: list[str | None] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None: ...

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                endpoint.tokens.append(self.headers.get("Authorization"))
                expires = (now() + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
                body = json.dumps({"AccessKeyId": "testing", "SecretAccessKey": "testing", "Token": "session",
                                   "Expiration": expires}).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/2018-06-01/credentials"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_container_credentials_are_fetched_once_and_again_before_they_expire() -> None:
    # GIVEN an endpoint whose keys last 10 minutes, and a clock the test moves
    now = [dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC)]
    endpoint = CredentialsEndpoint(lambda: now[0], dt.timedelta(minutes=10))
    try:
        source = ContainerCredentials(endpoint.url, "the-token", clock=lambda: now[0])
        # WHEN asked at once, 2 minutes later, then 6 minutes later (within 5 minutes of expiry)
        first = source.current()
        now[0] += dt.timedelta(minutes=2)
        assert source.current() is first
        now[0] += dt.timedelta(minutes=4)
        renewed = source.current()
        # THEN it fetched twice, with the token each time, and the renewed keys are new objects
        assert endpoint.tokens == ["the-token", "the-token"]
        assert renewed is not first and renewed.token == "session"
    finally:
        endpoint.close()


def test_container_credentials_over_plain_http_only_from_this_host() -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "t"}
    assert S3Client.from_env(env) is None  # never sends the token across a network
    for url in ("http://10.0.0.1/creds", "http://127.0.0.1.example.com/creds", "http://localhost.example.com/c"):
        with pytest.raises(ValueError, match="plain http"):
            ContainerCredentials(url, "t")  # refused at construction: nothing is sent
    for url in ("http://127.0.0.1:9001/c", "http://[::1]/c", "http://169.254.170.2/c", "https://creds.example/c"):
        assert ContainerCredentials(url, "t").url == url


def test_container_credentials_never_follow_a_redirect_with_the_token() -> None:
    # GIVEN an endpoint that answers with a redirect to another server (both on loopback here)
    elsewhere = CredentialsEndpoint(lambda: dt.datetime.now(dt.UTC), dt.timedelta(hours=1))

    class Redirecting(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None: ...

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(302)
            self.send_header("Location", elsewhere.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = ContainerCredentials(f"http://127.0.0.1:{server.server_address[1]}/creds", "the-token")
        # WHEN the credentials are fetched THEN it fails, and the other server never saw the token
        with pytest.raises(S3Error, match="NoCredentials|302"):
            source.current()
        assert elsewhere.tokens == []
    finally:
        server.shutdown()
        server.server_close()
        elsewhere.close()


def test_with_container_credentials_a_function_reads_the_model_without_boto3(  # type: ignore[no-untyped-def]
    s3, checkerboard_dir: Path
) -> None:
    # GIVEN a model on S3, and Lambda's SnapStart environment: no keys, a credentials endpoint
    uri = f"s3://{s3.bucket}/recommender"
    assert data.train(checkerboard_dir, uri) == 0
    endpoint = CredentialsEndpoint(lambda: dt.datetime.now(dt.UTC), dt.timedelta(hours=1))
    try:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=endpoint.url, AWS_CONTAINER_AUTHORIZATION_TOKEN="tok")
        # WHEN a store loads it THEN our client reads it (no boto3), with the endpoint's keys
        store = ModelStore(Settings(ModelUri.parse(uri)), parts=("catalog",))
        assert store.get().n_items == data.GROUPS * data.ITEMS_PER_GROUP
        assert isinstance(store.reader.client, S3Client)  # type: ignore[attr-defined]
        assert endpoint.tokens == ["tok"]
    finally:
        endpoint.close()
