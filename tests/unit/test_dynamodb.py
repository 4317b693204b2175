"""`recsys.dynamodb`: SigV4 signatures equal botocore's; DynamoDB's errors and retries, against a
scripted server on loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from recsys.dynamodb import DynamoDBClient, DynamoDBError
from recsys.s3 import Credentials, sign

pytestmark = pytest.mark.unit

WHEN = dt.datetime(2026, 12, 6, 8, 0, 0, tzinfo=dt.UTC)
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE+token/with=odd+chars"])
@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:5000"])
def test_signature_is_botocores_for_the_same_request(token: str | None, endpoint: str | None) -> None:
    # GIVEN a Query as our client sends it, and botocore's signer with the same credentials and time
    client = DynamoDBClient(Credentials(KEY, SECRET, token), "eu-west-1", endpoint, clock=lambda: WHEN)
    scheme, host, path = client.url()
    body = json.dumps({"TableName": "likes", "KeyConditionExpression": "visitor_id = :v",
                       "ExpressionAttributeValues": {":v": {"S": "ü b+c"}}}).encode()  # fmt: skip
    headers = {"host": host, "content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.Query"}
    ours = sign(Credentials(KEY, SECRET, token), "eu-west-1", "dynamodb", "POST", path, headers,
                hashlib.sha256(body).hexdigest(), WHEN)  # fmt: skip
    request = AWSRequest(method="POST", url=f"{scheme}://{host}{path}", data=body,
                         headers={"Content-Type": headers["content-type"], "X-Amz-Target": headers["x-amz-target"]})
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        botocore.auth.SigV4Auth(BotocoreCredentials(KEY, SECRET, token), "dynamodb", "eu-west-1").add_auth(request)
    # THEN the signatures are the same, byte for byte
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


class Scripted:
    """A server on loopback that answers each POST with the next (status, body) of `script`, and
    records what it was sent."""

    def __init__(self, script: list[tuple[int, dict[str, Any]]]) -> None:
        self.script, self.seen = list(script), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.seen.append((self.headers["X-Amz-Target"], json.loads(body), self.headers["Authorization"]))
                status, answer = outer.script.pop(0)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[Any]:
    def make(*script: tuple[int, dict[str, Any]]) -> tuple[Scripted, DynamoDBClient]:
        server = Scripted(list(script))
        request.addfinalizer(server.server.server_close)  # after shutdown (finalizers run last first)
        request.addfinalizer(server.server.shutdown)
        client = DynamoDBClient(Credentials("testing", "testing"), "us-east-1", server.endpoint, sleep=lambda _: None)
        return server, client

    yield make


def throttled() -> tuple[int, dict[str, Any]]:
    return 400, {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                 "message": "slow down"}  # fmt: skip


def test_a_query_is_sent_as_boto3_names_it_and_throttling_is_retried(scripted: Any) -> None:
    server, client = scripted(throttled(), (200, {"Items": [{"movie_id": {"N": "5"}}], "Count": 1}))
    answer = client.query(TableName="likes", KeyConditionExpression="visitor_id = :v",
                          ExpressionAttributeValues={":v": {"S": "a"}})  # fmt: skip
    assert answer["Items"] == [{"movie_id": {"N": "5"}}]
    assert [target for target, _, _ in server.seen] == ["DynamoDB_20120810.Query"] * 2
    assert server.seen[0][1]["TableName"] == "likes" and "Credential=testing/" in server.seen[0][2]


def test_a_refused_request_raises_dynamodbs_code_and_is_not_retried(scripted: Any) -> None:
    server, client = scripted((400, {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                                     "message": "Transaction cancelled [ConditionalCheckFailed]"}))  # fmt: skip
    with pytest.raises(DynamoDBError) as refused:
        client.transact_write_items(TransactItems=[])
    assert (refused.value.status, refused.value.code) == (400, "TransactionCanceledException")
    assert "ConditionalCheckFailed" in refused.value.message and len(server.seen) == 1


def test_server_errors_are_retried_up_to_the_attempts_then_raised(scripted: Any) -> None:
    server, client = scripted(*[(500, {"__type": "InternalServerError"})] * 3)
    with pytest.raises(DynamoDBError) as failed:
        client.put_item(TableName="likes", Item={})
    assert failed.value.code == "InternalServerError" and len(server.seen) == client.attempts == 3


def test_a_table_that_does_not_answer_fails_within_the_deadline() -> None:
    # GIVEN an address on loopback where nothing listens (connection refused, every attempt)
    client = DynamoDBClient(Credentials("testing", "testing"), "us-east-1", "http://127.0.0.1:9", sleep=lambda _: None)
    with pytest.raises(DynamoDBError) as failed:
        client.scan(TableName="likes")
    assert failed.value.status == 0 and failed.value.code in ("ConnectionRefusedError", "OSError")


def test_the_client_comes_from_lambdas_environment_with_its_endpoint() -> None:
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "eu-west-1",
           "AWS_ENDPOINT_URL": "http://x:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5000"}  # fmt: skip
    client = DynamoDBClient.from_env(env)
    assert client is not None and client.region == "eu-west-1"
    assert client.url() == ("http", "127.0.0.1:5000", "/")
    assert DynamoDBClient.from_env({}) is None
    assert DynamoDBClient.from_env({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}).url() == (  # type: ignore[union-attr]
        "https", "dynamodb.us-east-1.amazonaws.com", "/")
