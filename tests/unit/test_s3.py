"""`recsys.s3`: SigV4 signatures equal botocore's; addressing; which credentials make a client."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials as BotocoreCredentials

from recsys.s3 import Credentials, S3Client

pytestmark = pytest.mark.unit

WHEN = dt.datetime(2026, 11, 30, 8, 0, 0, tzinfo=dt.UTC)
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE+token/with=odd+chars"])
@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:5000"])
@pytest.mark.parametrize(("bucket", "key"), [
    ("models-bench", "recommender/latest.json"),
    ("my.dotted.bucket", "recommender/models/v1/catalog.pkl"),
    ("models-bench", "a b/ü+x=1~(2).pkl"),
])  # fmt: skip
def test_signature_is_botocores_for_the_same_request(
    token: str | None, endpoint: str | None, bucket: str, key: str
) -> None:
    # GIVEN our client and botocore's S3 signer with the same credentials, region and time
    client = S3Client(Credentials(KEY, SECRET, token), "eu-west-1", endpoint, clock=lambda: WHEN)
    scheme, host, path = client.url(bucket, key)
    ours = client.signed_headers("GET", host, path)
    request = AWSRequest(method="GET", url=f"{scheme}://{host}{path}",
                         headers={"x-amz-content-sha256": ours["x-amz-content-sha256"]})  # fmt: skip
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        botocore.auth.S3SigV4Auth(BotocoreCredentials(KEY, SECRET, token), "s3", "eu-west-1").add_auth(request)
    # THEN the signatures are the same, byte for byte
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


def test_addressing_is_virtual_hosted_unless_an_endpoint_or_a_dotted_bucket() -> None:
    client = S3Client(Credentials(KEY, SECRET), "eu-west-1")
    assert client.url("models", "p/latest.json") == ("https", "models.s3.eu-west-1.amazonaws.com", "/p/latest.json")
    assert client.url("a.b", "k") == ("https", "s3.eu-west-1.amazonaws.com", "/a.b/k")
    local = S3Client(Credentials(KEY, SECRET), "eu-west-1", "http://127.0.0.1:5000/")
    assert local.url("models", "p/latest.json") == ("http", "127.0.0.1:5000", "/models/p/latest.json")


def test_client_comes_from_lambdas_environment_only() -> None:
    env = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "t",
           "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://a",
           "AWS_ENDPOINT_URL_S3": "http://s3"}  # fmt: skip
    client = S3Client.from_env(env)
    assert client is not None
    assert (client.credentials, client.region, client.endpoint) == (
        Credentials(KEY, SECRET, "t"),
        "eu-west-1",
        "http://s3",
    )
    # a profile, SSO or instance role is boto3's business: no client here
    assert S3Client.from_env({"AWS_PROFILE": "dev"}) is None
    assert S3Client.from_env({"AWS_ACCESS_KEY_ID": KEY}) is None


RAW_KEYS = ["a b/c d.pkl", "p+q=r~s.pkl", "ünï/cödé/ß.pkl", "100%/x%20y.pkl", "a&b$c@d:e,f;g.pkl", "é+ +é/=~%"]


def _botocore_request(key: str, bucket: str, endpoint: str | None, token: str | None) -> Any:
    """The request botocore's own S3 client sends for GetObject of the raw `key` (captured, not sent)."""
    captured = []

    def capture(request: Any, **_: Any) -> AWSResponse:
        captured.append(request)
        return AWSResponse(request.url, 200, {}, None)

    style = "path" if endpoint or "." in bucket else "virtual"
    config = Config(s3={"addressing_style": style}, response_checksum_validation="when_required")
    client = botocore.session.get_session().create_client(
        "s3", region_name="eu-west-1", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
        aws_session_token=token, config=config,
    )  # fmt: skip
    client.meta.events.register("before-send.s3.GetObject", capture)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        client.get_object(Bucket=bucket, Key=key)
    return captured[0]


@pytest.mark.parametrize("key", RAW_KEYS)
@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:5000"])
def test_a_raw_key_is_encoded_and_signed_as_botocore_does(key: str, endpoint: str | None) -> None:
    # GIVEN a raw key (spaces, +, =, ~, unicode, %) given to botocore's S3 client and to ours
    sent = _botocore_request(key, "models-bench", endpoint, "tok+en/=")
    client = S3Client(Credentials(KEY, SECRET, "tok+en/="), "eu-west-1", endpoint, clock=lambda: WHEN)
    scheme, host, path = client.url("models-bench", key)
    # THEN ours addresses the same URL, byte for byte (botocore encoded the key itself)
    assert f"{scheme}://{host}{path}" == sent.url
    # AND signs it as botocore's signer does, over the headers ours sends
    ours = client.signed_headers("GET", host, path)
    request = AWSRequest(method="GET", url=sent.url, headers={"x-amz-content-sha256": ours["x-amz-content-sha256"]})
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        botocore.auth.S3SigV4Auth(BotocoreCredentials(KEY, SECRET, "tok+en/="), "s3", "eu-west-1").add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]
