"""The S3 reads of serving, HEAD and GET of whole objects, signed with SigV4 by the standard library.

Why not boto3 here: importing boto3 and building its S3 client is most of the cold-start floor
(botocore's modules, then 1.3 MB of endpoint data and S3's service model parsed from JSON: about
0.45 s on the bench machine), and serving makes one HEAD and a few GETs. This module costs a few
milliseconds to import. It answers only when Lambda's kind of credentials are in the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optional ``AWS_SESSION_TOKEN``); otherwise
(a developer's profile, SSO) `recsys.store` builds a boto3 client as before. Signing follows the
SigV4 specification; a test checks it against botocore's signer byte for byte.

Endpoints: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (path-style, as for moto), else the
regional virtual-hosted endpoint ``https://<bucket>.s3.<region>.amazonaws.com``. http.client is
what X-Ray's ``httplib`` patch traces, so with tracing on every read is a subsegment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")  # no dots: virtual-hosted TLS works


class S3Error(Exception):
    """A request S3 refused or that could not be made: HTTP status (0 when none) and S3's code."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{code} {message}".strip())
        self.status, self.code = status, code


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True)
class S3Client:
    """HEAD and GET of S3 objects with bounded timeouts and attempts.

    Parameters
    ----------
    credentials : Credentials
    region : str
    endpoint : str, optional
        A custom endpoint (``http://127.0.0.1:5000``), addressed path-style.
    timeout : float
        Seconds to connect, and seconds of silence while reading.
    attempts : int
        Tries per request; connection failures, timeouts and 5xx are retried.
    clock : callable returning an aware UTC datetime (injected by tests)
    """

    credentials: Credentials
    region: str
    endpoint: str | None = None
    timeout: float = 1.0
    attempts: int = 2
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    @classmethod
    def from_env(cls, env: Mapping[str, str], timeout: float = 1.0, attempts: int = 2) -> S3Client | None:
        """A client from Lambda's environment, or None when it holds no credentials."""
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        credentials = Credentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        return cls(credentials, region, endpoint, timeout, attempts)

    def head(self, bucket: str, key: str) -> dict[str, str]:
        """The object's response headers, lower-cased names (``etag`` among them)."""
        return self._request("HEAD", bucket, key)[0]

    def get(self, bucket: str, key: str) -> bytes:
        """The object's bytes."""
        return self._request("GET", bucket, key)[1]

    # -- the request ------------------------------------------------------------------------

    def url(self, bucket: str, key: str) -> tuple[str, str, str]:
        """(scheme, host, path) of an object: path-style on a custom endpoint or a dotted bucket."""
        quoted = urllib.parse.quote(key, safe="/~")
        if self.endpoint:
            parts = urllib.parse.urlsplit(self.endpoint)
            base = parts.path.rstrip("/")
            return parts.scheme, parts.netloc, f"{base}/{bucket}/{quoted}"
        if _DNS_BUCKET.match(bucket):
            return "https", f"{bucket}.s3.{self.region}.amazonaws.com", f"/{quoted}"
        return "https", f"s3.{self.region}.amazonaws.com", f"/{bucket}/{quoted}"

    def signed_headers(self, method: str, host: str, path: str) -> dict[str, str]:
        """The headers of a SigV4-signed request without a body or query (AWS's specification)."""
        now = self.clock().astimezone(dt.UTC)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
        if self.credentials.token:
            headers["x-amz-security-token"] = self.credentials.token
        names = sorted(headers)
        canonical = "\n".join(
            [method, path, "", *(f"{n}:{headers[n].strip()}" for n in names), "", ";".join(names), EMPTY_SHA256]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.credentials.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return headers

    def _request(self, method: str, bucket: str, key: str) -> tuple[dict[str, str], bytes]:
        scheme, host, path = self.url(bucket, key)
        connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        failure = S3Error(0, "NoAttempt")
        for _ in range(max(1, self.attempts)):
            connection = connection_class(host, timeout=self.timeout)
            try:
                connection.request(method, path, headers=self.signed_headers(method, host, path))
                response = connection.getresponse()
                body = response.read()
                headers = {k.lower(): v for k, v in response.getheaders()}
            except (OSError, http.client.HTTPException) as exc:  # timeouts are OSErrors
                failure = S3Error(0, type(exc).__name__, str(exc))
                continue
            finally:
                connection.close()
            if response.status == 200:
                return headers, body
            failure = S3Error(response.status, _error_code(response.status, body), _error_message(body))
            if response.status < 500:
                break
        raise failure


def _error_code(status: int, body: bytes) -> str:
    match = re.search(rb"<Code>([^<]{1,64})</Code>", body)
    return match.group(1).decode(errors="replace") if match else str(status)


def _error_message(body: bytes) -> str:
    match = re.search(rb"<Message>([^<]{0,300})</Message>", body)
    return match.group(1).decode(errors="replace") if match else ""
