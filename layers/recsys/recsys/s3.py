"""The S3 reads of serving: GETs of whole objects, under one deadline per load, signed with SigV4
by the standard library.

Why not boto3 here: importing boto3 and building its S3 client is most of the cold-start floor
(botocore's modules, then 1.3 MB of endpoint data and S3's service model parsed from JSON: about
0.45 s on the bench machine), and serving makes a few GETs. This module costs a few
milliseconds to import. It answers only when Lambda's kinds of credentials are in the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optional ``AWS_SESSION_TOKEN``; or, as SnapStart
gives them, a container credentials endpoint: `ContainerCredentials`); otherwise
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
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")  # no dots: virtual-hosted TLS works


class S3Error(Exception):
    """A request S3 refused or that could not be made: HTTP status (0 when none) and S3's code."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{code} {message}".strip())
        self.status, self.code = status, code


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None = None

    def current(self) -> Credentials:
        return self


class ContainerCredentials:
    """Credentials from a container credentials endpoint, as Lambda hands them to a SnapStart
    function (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with ``AWS_CONTAINER_AUTHORIZATION_TOKEN``):
    fetched on first use, and again when they are within `REFRESH_BEFORE_S` of expiring.

    Plain http is accepted only to a loopback or the container agents' link-local addresses, as
    the AWS SDKs do, so a token is never sent across a network.
    """

    REFRESH_BEFORE_S = 300.0
    _AGENT_HOSTS = ("localhost", "169.254.170.2", "169.254.170.23")

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 1.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and self._local(parts.hostname or "")):
            raise ValueError(f"container credentials over plain http only from this host, not {parts.netloc!r}")
        self.url, self.token, self.timeout, self.clock = url, token, timeout, clock
        self._cached: tuple[Credentials, dt.datetime] | None = None

    @classmethod
    def _local(cls, host: str) -> bool:
        """Loopback, or a container agent's link-local address: the whole host name, never a prefix."""
        import ipaddress  # only where container credentials are used

        if host in cls._AGENT_HOSTS:
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def current(self) -> Credentials:
        if self._cached is None or (self._cached[1] - self.clock()).total_seconds() < self.REFRESH_BEFORE_S:
            self._cached = self._fetch()
        return self._cached[0]

    def _fetch(self) -> tuple[Credentials, dt.datetime]:
        """One GET of the endpoint. A redirect is an error, never followed: it could name a host the
        constructor would refuse, and the token would go along."""
        import urllib.request  # only where container credentials are used: 5 ms of every other cold start

        class NoRedirects(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None  # urllib then raises the 3xx as an HTTPError

        request = urllib.request.Request(self.url, headers={"Authorization": self.token})
        opener = urllib.request.build_opener(NoRedirects)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                doc = json.loads(response.read(64 * 1024))
            expires = dt.datetime.fromisoformat(str(doc["Expiration"]).replace("Z", "+00:00"))
            return Credentials(str(doc["AccessKeyId"]), str(doc["SecretAccessKey"]), doc.get("Token")), expires
        except (OSError, ValueError, KeyError, TypeError) as exc:  # URLError is an OSError
            raise S3Error(0, "NoCredentials", f"container credentials: {type(exc).__name__}: {exc}") from exc


class CredentialSource(Protocol):
    def current(self) -> Credentials: ...


def credentials_from_env(env: Mapping[str, str], timeout: float = 1.0) -> CredentialSource | None:
    """The credentials Lambda gives a function: keys in the environment, or a container
    credentials endpoint (SnapStart); None when there are neither (a developer's profile)."""
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return Credentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)
    if not env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return None
    token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "")
    token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError:
            return None
    try:
        return ContainerCredentials(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], token, timeout)
    except ValueError:
        return None


def region_from_env(env: Mapping[str, str]) -> str:
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


class Deadline:
    """A point in time on the monotonic clock that a whole load must finish by.

    Every request of one model load shares one, so a slow S3 cannot stretch a cold start past it:
    a connection's timeout is never longer than what is left, and a body is read in chunks with the
    deadline checked between them (a server that drips one byte a second meets it too).
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self._clock = seconds, clock
        self._at = clock() + seconds

    def remaining(self) -> float:
        return self._at - self._clock()

    def check(self, what: str) -> float:
        """The seconds left; S3Error ``DeadlineExceeded`` when there are none."""
        left = self.remaining()
        if left <= 0:
            raise S3Error(0, "DeadlineExceeded", f"{what}: the load's {self.seconds:g} s deadline passed")
        return left


class S3Object(NamedTuple):
    body: bytes | bytearray
    etag: str | None


#: Bytes read per chunk of a body; the deadline is checked between chunks.
CHUNK_BYTES = 256 * 1024
#: Retries wait a random time up to BACKOFF_BASE_S * 2**attempt ("full jitter"), capped.
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 1.0


class S3Client(NamedTuple):
    """GET of S3 objects with bounded timeouts, attempts and an overall deadline.

    Parameters
    ----------
    credentials : Credentials or ContainerCredentials
        Asked for the current credentials at each request.
    region : str
    endpoint : str, optional
        A custom endpoint (``http://127.0.0.1:5000``), addressed path-style.
    timeout : float
        Seconds to connect, and seconds of silence while reading (never more than the deadline
        leaves).
    attempts : int
        Tries per request; connection failures, timeouts and 5xx (SlowDown among them) are
        retried after a jittered backoff, never past the deadline.
    clock : callable returning an aware UTC datetime (injected by tests)
    sleep : callable(seconds), injected by tests
    observe : callable(method, url, status, start, end), optional
        Told of every attempt (status 0 when none came; epoch seconds): tracing records them.
    """

    credentials: CredentialSource
    region: str
    endpoint: str | None = None
    timeout: float = 1.0
    attempts: int = 2
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    sleep: Callable[[float], None] = time.sleep
    observe: Callable[[str, str, int, float, float], None] | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        timeout: float = 1.0,
        attempts: int = 2,
        observe: Callable[[str, str, int, float, float], None] | None = None,
    ) -> S3Client | None:
        """A client from Lambda's environment, or None when it holds no credentials of the kinds
        Lambda gives: keys in the environment, or a container credentials endpoint (SnapStart)."""
        credentials = credentials_from_env(env, timeout)
        if credentials is None:
            return None
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        return cls(credentials, region_from_env(env), endpoint, timeout, attempts, observe=observe)

    def get(
        self,
        bucket: str,
        key: str,
        *,
        size: int | None = None,
        limit: int | None = None,
        deadline: Deadline | None = None,
    ) -> S3Object:
        """The object's bytes and ETag.

        `size`, when given, is what the object must hold: a Content-Length that differs is refused
        (S3Error ``SizeMismatch``) before its body is read. `limit` caps what is read of an object
        of unknown size (``TooLarge``). `deadline` bounds every attempt together (30 s when None).
        """
        deadline = deadline or Deadline(30.0)
        failure = S3Error(0, "NoAttempt")
        for attempt in range(max(1, self.attempts)):
            if attempt:
                pause = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * _fraction()
                if pause >= deadline.remaining():
                    break
                self.sleep(pause)
            started, status = time.time(), 0
            try:
                status, etag, body = self._attempt(bucket, key, size, limit, deadline)
            except (OSError, http.client.HTTPException) as exc:  # timeouts are OSErrors
                failure = S3Error(0, type(exc).__name__, str(exc))
                continue
            finally:
                if self.observe is not None:
                    scheme, host, path = self.url(bucket, key)
                    self.observe("GET", f"{scheme}://{host}{path}", status, started, time.time())
            if status == 200:
                return S3Object(body, etag)
            failure = S3Error(status, _error_code(status, body), _error_message(body))
            if status < 500:
                break
        raise failure

    def _attempt(
        self, bucket: str, key: str, size: int | None, limit: int | None, deadline: Deadline
    ) -> tuple[int, str | None, bytes | bytearray]:
        """One GET: status, ETag and body (of an error, its first 64 KiB)."""
        scheme, host, path = self.url(bucket, key)
        connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = connection_class(host, timeout=min(self.timeout, deadline.check(key)))
        try:
            connection.request("GET", path, headers=self.signed_headers("GET", host, path))
            with connection.getresponse() as response:
                deadline.check(key)
                if response.status != 200:
                    return response.status, None, _read(response, deadline, key, 64 * 1024, truncate=True)
                length = _content_length(response)
                cap = check_length(key, length, size, limit)
                if size is not None and length == size and not response.chunked:
                    return 200, response.getheader("etag"), _read_into(response, deadline, key, size)
                return 200, response.getheader("etag"), _read(response, deadline, key, cap)
        finally:
            connection.close()

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
        headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256}
        return sign(self.credentials.current(), self.region, "s3", method, path, headers, EMPTY_SHA256, self.clock())


def sign(
    credentials: Credentials, region: str, service: str, method: str, path: str, headers: Mapping[str, str],
    payload_sha256: str, now: dt.datetime,
) -> dict[str, str]:  # fmt: skip
    """`headers` (lower-case names, ``host`` among them) with ``x-amz-date``, the session token if
    any, and the SigV4 ``authorization`` of a request with no query string to `service`: AWS's
    specification, from the standard library. `path` is already URI-encoded."""
    now = now.astimezone(dt.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = {**headers, "x-amz-date": stamp}
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical = "\n".join(
        [method, path, "", *(f"{n}:{signed[n].strip()}" for n in names), "", ";".join(names), payload_sha256]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + credentials.secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


def _fraction() -> float:
    """A random number in [0, 1) for the jitter, from the OS (no `random` module on the cold path)."""
    return int.from_bytes(os.urandom(4)) / 2**32


def check_length(key: str, length: int | None, size: int | None, limit: int | None) -> int | None:
    """Refuse a body by its announced `length` before reading it: S3Error ``SizeMismatch`` when it
    is not the expected `size`, ``TooLarge`` when over `limit`. Returns the most to read."""
    if size is not None and length is not None and length != size:
        raise S3Error(200, "SizeMismatch", f"{key} is {length} bytes, expected {size}")
    cap = size if size is not None else limit
    if cap is not None and length is not None and length > cap:
        raise S3Error(200, "TooLarge", f"{key} is {length} bytes, over {cap}")
    return cap


def _read(
    response: http.client.HTTPResponse, deadline: Deadline, key: str, limit: int | None, truncate: bool = False
) -> bytes:
    """The body in chunks, the deadline checked before each: a read overruns it by at most one
    socket timeout, however slowly the server sends. Past `limit`: S3Error ``TooLarge``, or the
    first `limit` bytes when `truncate`."""
    chunks: list[bytes] = []
    total = 0
    while True:
        deadline.check(key)
        chunk = response.read1(CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if limit is not None and total > limit:
            if truncate:
                return b"".join(chunks)
            raise S3Error(200, "TooLarge", f"{key} is over {limit} bytes")
        chunks.append(chunk)


def _read_into(response: http.client.HTTPResponse, deadline: Deadline, key: str, size: int) -> bytearray:
    """A body of announced `size` (not chunked), read straight from the socket's buffer into one
    buffer, so no byte is copied twice; what has arrived is taken at once, and the deadline checked
    before each read, as in `_read`."""
    body = bytearray(size)
    view, total = memoryview(body), 0
    with view:
        while total < size:
            deadline.check(key)
            got = response.fp.readinto1(view[total : total + CHUNK_BYTES])
            if not got:
                raise http.client.IncompleteRead(bytes(view[:0]), size - total)
            total += got
    return body


def _content_length(response: http.client.HTTPResponse) -> int | None:
    raw = response.getheader("content-length")
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 16 else None


def _error_code(status: int, body: bytes | bytearray) -> str:
    match = re.search(rb"<Code>([^<]{1,64})</Code>", body)
    return match.group(1).decode(errors="replace") if match else str(status)


def _error_message(body: bytes | bytearray) -> str:
    match = re.search(rb"<Message>([^<]{0,300})</Message>", body)
    return match.group(1).decode(errors="replace") if match else ""
