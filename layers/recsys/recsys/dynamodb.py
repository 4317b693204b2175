"""DynamoDB's JSON API over http.client, signed with SigV4 by `recsys.s3.sign`: what FeedbackFunction
calls, without boto3.

Why: importing boto3 and building its DynamoDB client is most of FeedbackFunction's cold start
(botocore's 113 modules, its endpoint data and DynamoDB's service model parsed from JSON), for a
query and a transaction. Process start to the first 200 of ``POST /feedback``, tracing on, took
0.455 s with boto3 (1.11x the floor of ``import boto3, numpy``) and takes 0.228 s with this module
(0.49x), medians of 7 (`python -m bench.feedback_cold`).

Like `recsys.s3`, it answers only with Lambda's kinds of credentials in the environment; elsewhere
(a developer's profile) `client` builds boto3's client, which has the same methods.

The methods take and return what boto3's low-level client does (``query(TableName=...,
KeyConditionExpression=...)`` returns ``{"Items": [...], ...}``), so `recsys.feedback` runs on
either. A refused request raises `DynamoDBError` with DynamoDB's error code (the short name, as
boto3's ``ClientError`` gives it). Throttling, 5xx and failed connections are retried after a
jittered backoff, at most `attempts` times and never past the request's deadline.

Endpoint: ``AWS_ENDPOINT_URL_DYNAMODB`` or ``AWS_ENDPOINT_URL`` (moto), else
``https://dynamodb.<region>.amazonaws.com``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from recsys.s3 import CredentialSource, Deadline, S3Error, credentials_from_env, region_from_env, sign

#: Error codes worth another attempt (besides any 5xx): DynamoDB's throttling.
RETRIED = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "LimitExceededException", "InternalServerError", "ServiceUnavailable",
})  # fmt: skip
#: Bytes of a response read at most (a query's page is at most 1 MB).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class DynamoDBError(Exception):
    """A request DynamoDB refused, or that could not be made: HTTP status (0 when none came), the
    error code (``ConditionalCheckFailedException``, ``TransactionCanceledException``, ...), and
    DynamoDB's message."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status, self.code, self.message = status, code, message


class DynamoDBClient(NamedTuple):
    """DynamoDB's operations that the project calls, as boto3's client names them.

    Parameters
    ----------
    credentials : Credentials or ContainerCredentials (`recsys.s3`)
    region : str
    endpoint : str, optional
        ``http://127.0.0.1:5000`` for moto.
    timeout : float
        Seconds to connect, and of silence while reading (never more than the deadline leaves).
    attempts : int
    deadline_s : float
        What one call may take, its retries included.
    clock : callable returning an aware UTC datetime; sleep : callable(seconds) (tests inject them)
    """

    credentials: CredentialSource
    region: str
    endpoint: str | None = None
    timeout: float = 1.0
    attempts: int = 3
    deadline_s: float = 5.0
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_env(cls, env: Mapping[str, str], timeout: float = 1.0, attempts: int = 3) -> DynamoDBClient | None:
        """A client from Lambda's environment, or None without Lambda's kinds of credentials."""
        credentials = credentials_from_env(env, timeout)
        if credentials is None:
            return None
        endpoint = env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL") or None
        return cls(credentials, region_from_env(env), endpoint, timeout, attempts)

    # -- the operations (boto3's names and shapes) -------------------------------------------

    def query(self, **request: Any) -> dict[str, Any]:
        return self.call("Query", request)

    def scan(self, **request: Any) -> dict[str, Any]:
        return self.call("Scan", request)

    def put_item(self, **request: Any) -> dict[str, Any]:
        return self.call("PutItem", request)

    def delete_item(self, **request: Any) -> dict[str, Any]:
        return self.call("DeleteItem", request)

    def update_item(self, **request: Any) -> dict[str, Any]:
        return self.call("UpdateItem", request)

    def transact_write_items(self, **request: Any) -> dict[str, Any]:
        return self.call("TransactWriteItems", request)

    # -- the request ------------------------------------------------------------------------

    def call(self, operation: str, request: Mapping[str, Any], deadline: Deadline | None = None) -> dict[str, Any]:
        """One operation of DynamoDB's JSON API, retried as the module's docstring says: its
        decoded answer, or DynamoDBError."""
        deadline = deadline or Deadline(self.deadline_s)
        body = json.dumps(request, separators=(",", ":")).encode()
        failure = DynamoDBError(0, "NoAttempt")
        for attempt in range(max(1, self.attempts)):
            if attempt:
                pause = min(1.0, 0.05 * 2**attempt) * int.from_bytes(os.urandom(4)) / 2**32  # full jitter
                if pause >= deadline.remaining():
                    break
                self.sleep(pause)
            try:
                status, answer = self._attempt(operation, body, deadline)
            except S3Error as exc:  # the deadline passed
                failure = DynamoDBError(0, exc.code, str(exc))
                break
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
                failure = DynamoDBError(0, type(exc).__name__, str(exc))
                continue
            if status == 200:
                return _decode(answer)
            failure = _error(status, answer)
            if status < 500 and failure.code not in RETRIED:
                break
        raise failure

    def _attempt(self, operation: str, body: bytes, deadline: Deadline) -> tuple[int, bytes]:
        scheme, host, path = self.url()
        connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = connection_class(host, timeout=min(self.timeout, deadline.check(operation)))
        headers = {"host": host, "content-type": "application/x-amz-json-1.0",
                   "x-amz-target": f"DynamoDB_20120810.{operation}"}  # fmt: skip
        digest = hashlib.sha256(body).hexdigest()
        signed = sign(self.credentials.current(), self.region, "dynamodb", "POST", path, headers, digest, self.clock())
        try:
            connection.request("POST", path, body=body, headers=signed)
            with connection.getresponse() as response:
                deadline.check(operation)
                return response.status, response.read(MAX_RESPONSE_BYTES)
        finally:
            connection.close()

    def url(self) -> tuple[str, str, str]:
        """(scheme, host, path) of the API."""
        if self.endpoint:
            parts = urllib.parse.urlsplit(self.endpoint)
            return parts.scheme, parts.netloc, (parts.path.rstrip("/") or "") + "/"
        return "https", f"dynamodb.{self.region}.amazonaws.com", "/"


def _decode(answer: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(answer) if answer else {}
    except ValueError:
        raise DynamoDBError(200, "BadResponse", "the answer is not JSON") from None
    if not isinstance(decoded, dict):
        raise DynamoDBError(200, "BadResponse", "the answer is not a JSON object")
    return decoded


def _error(status: int, answer: bytes) -> DynamoDBError:
    """DynamoDB's error: ``__type`` is ``com.amazonaws.dynamodb.v20120810#Code``; the code is what
    follows the ``#``, as boto3 reports it."""
    try:
        decoded = json.loads(answer)
    except ValueError:
        decoded = {}
    if not isinstance(decoded, dict):
        decoded = {}
    code = str(decoded.get("__type", "")).rpartition("#")[2] or str(status)
    message = str(decoded.get("message") or decoded.get("Message") or "")[:300]
    return DynamoDBError(status, code, message)


def client(env: Mapping[str, str] | None = None) -> Any:
    """`DynamoDBClient` from Lambda's environment, or boto3's DynamoDB client (short timeouts,
    standard retries) where the credentials are a developer's."""
    slim = DynamoDBClient.from_env(os.environ if env is None else env)
    if slim is not None:
        return slim
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=1, read_timeout=3, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client("dynamodb", config=config)
