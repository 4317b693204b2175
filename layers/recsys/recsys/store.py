"""Loading the serving model: pointer, download, verify, restricted unpickle, cache, refresh.

A function keeps one `ModelStore` per container, which loads only the parts of the model that the
function serves (declared by the function: ``api.Runtime(parts=...)``). The first request reads
``latest.json`` and the parts it names; at most every `Settings.refresh_seconds` one request reads
the pointer again and, when its bytes changed, loads the new model beside the old one and swaps it
in whole. The pointer's tag is the sha256 of the bytes that one GET returned, so what is compared
and what is loaded can never come from two different reads.

Whatever goes wrong while loading becomes `ModelUnavailableError`: on a warm container it is logged
and the old model keeps serving; on a cold one it is a 503, and the next attempt waits
`FAILED_LOAD_BACKOFF_S` (requests meanwhile get the same 503 at once, without touching S3). A
pointer whose model failed its integrity check (`ModelIntegrityError`) is remembered until the
pointer changes, so a bad model is downloaded once per container, not at every refresh; a
transient failure (S3 down, the deadline passed, memory ran out) is not remembered.

Every load has one deadline (`Settings.load_deadline_seconds`) across all its requests, measured
on the monotonic clock. The format, its checks and the restricted unpickler are `recsys.parts`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from recsys.artifact import ModelArtifact
from recsys.config import Settings
from recsys.errors import ModelIntegrityError, ModelUnavailableError
from recsys.parts import MAX_POINTER_BYTES, POINTER, Pointer, load_part
from recsys.s3 import Deadline, S3Client, S3Error, S3Object, check_length
from recsys.uri import ModelUri

logger = logging.getLogger(__name__)

#: After a failed cold load, requests get the same 503 for this long before the next attempt.
FAILED_LOAD_BACKOFF_S = 5.0
#: Per request: seconds to connect and of silence while reading, and tries. The load's deadline
#: bounds them all together.
S3_TIMEOUTS = {"connect_timeout": 1.0, "read_timeout": 1.0}
S3_ATTEMPTS = 3


class Reader(Protocol):
    """Reads files of a model store.

    `size` is what the file must hold (refused before its body is read when it differs), `limit`
    the most that is read of a file of unknown size; `deadline` bounds the read.
    """

    def read(
        self, relative: str, *, size: int | None = None, limit: int | None = None, deadline: Deadline | None = None
    ) -> bytes | bytearray: ...


class LocalReader:
    def __init__(self, uri: ModelUri) -> None:
        self.uri = uri

    def read(
        self, relative: str, *, size: int | None = None, limit: int | None = None, deadline: Deadline | None = None
    ) -> bytes:
        path = Path(self.uri.key(relative))
        try:
            with path.open("rb") as f:
                actual = os.fstat(f.fileno()).st_size
                if size is not None and actual != size:
                    raise ModelIntegrityError(f"{relative} is {actual} bytes, the pointer says {size}")
                if limit is not None and actual > limit:
                    raise ModelIntegrityError(f"{relative} is {actual} bytes, over {limit}")
                return f.read()
        except OSError as exc:
            raise ModelUnavailableError(f"cannot read {path}: {exc.strerror}") from exc


class S3Reader:
    """Reads a store under an S3 prefix through a client with ``get(bucket, key, size=, limit=, deadline=)``:
    `recsys.s3.S3Client`, or `Boto3Objects`."""

    def __init__(self, uri: ModelUri, client: Any) -> None:
        self.uri = uri
        self.client = client

    def read(
        self, relative: str, *, size: int | None = None, limit: int | None = None, deadline: Deadline | None = None
    ) -> bytes | bytearray:
        key = self.uri.key(relative)
        try:
            got: S3Object = self.client.get(self.uri.bucket, key, size=size, limit=limit, deadline=deadline)
            return got.body
        except S3Error as exc:
            error = ModelIntegrityError if exc.code in ("SizeMismatch", "TooLarge") else ModelUnavailableError
            raise error(f"s3://{self.uri.bucket}/{key}: {exc}") from exc
        except Exception as exc:  # botocore raises a zoo of types; all of them mean "unavailable"
            raise ModelUnavailableError(f"s3://{self.uri.bucket}/{key}: {_describe(exc)}") from exc


class Boto3Objects:
    """boto3's S3 client behind the interface of `recsys.s3.S3Client`, for a developer's profile.

    The body is read in chunks with the deadline checked between them, as `S3Client` does.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(
        self,
        bucket: str,
        key: str,
        *,
        size: int | None = None,
        limit: int | None = None,
        deadline: Deadline | None = None,
    ) -> S3Object:
        deadline = deadline or Deadline(30.0)
        response = self.client.get_object(Bucket=bucket, Key=key)
        with contextlib.closing(response["Body"]) as body:
            check_length(key, response.get("ContentLength"), size, limit)
            chunks = []
            for chunk in body.iter_chunks(256 * 1024):
                deadline.check(key)
                chunks.append(chunk)
        return S3Object(b"".join(chunks), response.get("ETag"))


def s3_client(observe: Callable[[str, str, int, float, float], None] | None = None) -> Any:
    """The S3 client of serving, with bounded timeouts and attempts (`S3_TIMEOUTS`); `observe` is
    told of each request (tracing).

    `recsys.s3.S3Client` when the environment holds credentials, as Lambda's does: it needs no
    botocore, whose import and client set-up are most of a cold start's fixed cost. Otherwise a
    boto3 client, which finds a developer's profile or SSO session (boto3 is imported only then).
    """
    client = S3Client.from_env(os.environ, timeout=S3_TIMEOUTS["read_timeout"], attempts=S3_ATTEMPTS, observe=observe)
    if client is not None:
        return client
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=S3_TIMEOUTS["connect_timeout"],
        read_timeout=S3_TIMEOUTS["read_timeout"],
        retries={"total_max_attempts": S3_ATTEMPTS, "mode": "standard"},
    )
    return Boto3Objects(boto3.client("s3", config=config))


def reader_for(uri: ModelUri, client_factory: Callable[[], Any] = s3_client) -> Reader:
    return S3Reader(uri, client_factory()) if uri.is_s3 else LocalReader(uri)


class ModelStore:
    """The model of one container, loaded on first use and refreshed when the pointer changes.

    Parameters
    ----------
    settings : Settings
    reader : Reader, optional
        Injected in tests; by default built from `settings.model_uri` on first use.
    clock : callable returning seconds
        When to refresh and how long to back off (injected by tests). Deadlines use the
        monotonic clock.
    on_load : callable(model, seconds), optional
        Told of every model loaded (for metrics).
    observe : callable(method, url, status, start, end), optional
        Told of every S3 request (for tracing; see `recsys.s3.S3Client`).
    parts : tuple of str, optional
        The parts to load (`recsys.parts.PARTS`); all of them when None.

    Attributes
    ----------
    bytes_read : int
        Model bytes this store has read (pointers aside), over all loads.
    """

    def __init__(
        self,
        settings: Settings,
        reader: Reader | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_load: Callable[[ModelArtifact, float], None] | None = None,
        parts: tuple[str, ...] | None = None,
        observe: Callable[[str, str, int, float, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.parts = parts
        self._observe = observe
        self.bytes_read = 0
        self._own_reader = reader is None
        self._reader = reader
        self._clock = clock
        self._on_load = on_load
        self._model: ModelArtifact | None = None
        self._tag: str | None = None
        self._checked_at = 0.0
        self._rejected_tag: str | None = None  # a pointer whose model failed its integrity check
        self._failure: tuple[float, ModelUnavailableError] | None = None  # the last failed cold load
        self._load_lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = reader_for(self.settings.model_uri, lambda: s3_client(self._observe))
        return self._reader

    def restored(self) -> None:
        """After a SnapStart restore: a new S3 client on the next read (the snapshot's connections
        and credentials are stale), no remembered failure, and the next request checks the pointer."""
        if self._own_reader:
            self._reader = None
        self._failure = None
        self._checked_at = float("-inf")

    def get(self) -> ModelArtifact:
        """The current model; loads it on first use, and checks for a newer one when due."""
        model = self._model
        if model is None:
            with self._load_lock:
                return self._model or self._cold_load()
        if self._clock() - self._checked_at >= self.settings.refresh_seconds:
            self._refresh()
        return self._model if self._model is not None else model

    def _cold_load(self) -> ModelArtifact:
        if self._failure is not None and self._clock() - self._failure[0] < FAILED_LOAD_BACKOFF_S:
            raise self._failure[1]
        try:
            model = self._load()
            if model is None:
                raise ModelIntegrityError("the pointer still names the model that failed its integrity check")
        except ModelUnavailableError as exc:
            self._failure = (self._clock(), exc)
            raise
        return model

    def _refresh(self) -> None:
        # One request checks; concurrent ones keep serving the current model meanwhile.
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            self._checked_at = self._clock()
            self._load()
        except ModelUnavailableError as exc:
            logger.warning("model refresh failed, still serving %s: %s", self._model and self._model.version, exc)
        finally:
            self._refresh_lock.release()

    def _load(self) -> ModelArtifact | None:
        """Read the pointer and, when it names a model not yet tried, load it: the model, or None
        when the pointer is the one already served or already rejected.

        Raises ModelUnavailableError for every failure, whatever raised it underneath; the pointer
        is remembered as rejected for ModelIntegrityError only.
        """
        deadline = Deadline(self.settings.load_deadline_seconds)
        started = time.perf_counter()
        try:
            raw = self.reader.read(POINTER, limit=MAX_POINTER_BYTES, deadline=deadline)
            tag = hashlib.sha256(raw).hexdigest()
            if tag in (self._tag, self._rejected_tag):
                return None
            try:
                model, size = read_model(self.reader, raw, self.parts, deadline)
            except ModelIntegrityError:
                self._rejected_tag = tag
                raise
        except ModelUnavailableError:
            raise
        except Exception as exc:  # MemoryError, or anything a hostile store makes Python raise
            raise ModelUnavailableError(f"loading the model failed: {type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - started
        self.bytes_read += size
        self._model, self._tag, self._checked_at = model, tag, self._clock()
        self._failure = None
        # The model and the modules loaded so far live as long as the container: move them out of
        # the cyclic collector's generations, so a full collection during a request no longer walks
        # them. freeze() is free; a gc.collect() first would cost 40-60 ms of cold start here. A
        # replaced model is still freed: nothing in it forms a cycle, so its reference count frees it.
        gc.freeze()
        logger.info("loaded model %s (%s, %d bytes) in %.3f s", model.version, ",".join(model.parts), size, seconds)
        if self._on_load is not None:
            self._on_load(model, seconds)
        return model


def read_model(
    reader: Reader,
    raw_pointer: bytes | bytearray,
    parts: tuple[str, ...] | None = None,
    deadline: Deadline | None = None,
) -> tuple[ModelArtifact, int]:
    """The model the pointer `raw_pointer` names, with only `parts` (all when None), and the bytes read.

    Reads each part the pointer names for its version, verifying every part before unpickling it.
    Raises ModelUnavailableError when something cannot be read, and its subclass
    ModelIntegrityError when something read is not what the pointer promised.
    """
    pointer = Pointer.parse(raw_pointer)
    wanted = ("catalog", *(p for p in (pointer.parts if parts is None else parts) if p != "catalog"))
    missing = [name for name in wanted if name not in pointer.parts]
    if missing:
        raise ModelIntegrityError(f"{POINTER} of {pointer.version} names no part {', '.join(missing)}")

    def fetch(name: str) -> dict[str, Any]:
        entry = pointer.parts[name]
        data = reader.read(entry.key, size=entry.size, deadline=deadline)
        return load_part(data, name=name, version=pointer.version, sha256=entry.sha256, size=entry.size)

    fields = at_once(fetch, wanted)
    size = sum(pointer.parts[name].size for name in wanted)
    try:
        return ModelArtifact.from_parts(fields), size
    except MemoryError:
        raise
    except Exception as exc:  # whatever a hostile state makes the checks raise, it is a bad model
        raise ModelIntegrityError(f"model is inconsistent: {type(exc).__name__}: {exc}") from exc


def at_once[T](fetch: Callable[[str], T], names: tuple[str, ...]) -> dict[str, T]:
    """``fetch(name)`` of every name, each on a thread of its own (the first on this one): a cold
    start waits for the slowest part instead of for the sum of them, as S3's latency is per request.

    When any fails, raises the error of the first failed name in `names`' order, as reading them one
    after the other would; every thread has finished by then (each read is bounded by the load's
    deadline).
    """
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}

    def run(name: str) -> None:
        try:
            results[name] = fetch(name)
        except BaseException as exc:  # handed to the caller below, whatever it is
            errors[name] = exc

    threads = [threading.Thread(target=run, args=(name,), name=f"read-{name}") for name in names[1:]]
    for thread in threads:
        thread.start()
    if names:
        run(names[0])
    for thread in threads:
        thread.join()
    failed = [name for name in names if name in errors]
    if failed:
        raise errors[failed[0]]
    return results


def open_model(location: str, parts: tuple[str, ...] | None = None) -> ModelArtifact:
    """The model a store (``s3://bucket/prefix`` or a folder) serves now: for tools and tests."""
    reader = reader_for(ModelUri.parse(location))
    return read_model(reader, reader.read(POINTER, limit=MAX_POINTER_BYTES), parts)[0]


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'error')} {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
