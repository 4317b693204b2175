"""The local gateway's IAM authorization (`devstack.sigv4`) against what botocore, the standard
SigV4 client, signs: it takes exactly what the local stack's test credentials sign, and refuses
the rest with API Gateway's messages."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack import sigv4

HOST = "127.0.0.1:3000"


def signed(
    method: str = "POST", target: str = "/events", body: bytes = b'{"user_id": 1, "events": []}',
    key: str = "testing", secret: str = "testing", region: str = "us-east-1", service: str = "execute-api",
    token: str | None = None,
) -> tuple[str, str, dict[str, str], bytes]:  # fmt: skip
    request = AWSRequest(method=method, url=f"http://{HOST}{target}", data=body,
                         headers={"Content-Type": "application/json"})  # fmt: skip
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    return method, target, {"Host": HOST, **dict(request.headers.items())}, body


def test_what_botocore_signs_with_the_test_credentials_passes() -> None:
    assert sigv4.refusal(*signed()) is None
    assert sigv4.refusal(*signed("DELETE", "/users/42/events", b"")) is None
    assert sigv4.refusal(*signed("GET", "/recommendations/7?k=5&explain=true&genre=Sci-Fi%20Drama", b"")) is None
    assert sigv4.refusal(*signed(token="session-token")) is None  # temporary credentials sign the token too


def test_an_unsigned_request_is_missing_its_token() -> None:
    assert sigv4.refusal("POST", "/events", {"Host": HOST}, b"{}") == sigv4.MISSING


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"secret": "not-testing"}, sigv4.MISMATCH),
        ({"key": "AKIAOTHER"}, sigv4.INVALID_TOKEN),
        ({"region": "eu-west-1"}, "valid region"),
        ({"service": "s3"}, "correct service: 'execute-api'"),
    ],
)
def test_a_request_signed_otherwise_is_refused_with_api_gateways_message(
    change: dict[str, str], expected: str
) -> None:
    refused = sigv4.refusal(*signed(**change))
    assert refused is not None and expected in refused


def test_a_signed_request_changed_on_the_way_is_refused() -> None:
    method, target, headers, body = signed()
    assert sigv4.refusal(method, target, headers, json.dumps({"user_id": 2, "events": []}).encode()) == sigv4.MISMATCH
    assert sigv4.refusal(method, "/users/1/events", headers, body) == sigv4.MISMATCH
    assert sigv4.refusal("PUT", target, headers, body) == sigv4.MISMATCH


def test_a_signature_older_than_fifteen_minutes_has_expired() -> None:
    method, target, headers, body = signed()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)
    refused = sigv4.refusal(method, target, headers, body, now=later)
    assert refused is not None and refused.startswith("Signature expired")
    assert sigv4.refusal(method, target, headers, body, now=later - dt.timedelta(minutes=2)) is None
