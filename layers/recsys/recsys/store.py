"""Loading the serving model: pointer, download, verify, restricted unpickle, cache, refresh.

A function keeps one `ModelStore` per container. The first request loads the model named by
``latest.json``; at most every `Settings.refresh_seconds` one request checks the pointer's ETag and,
when it changed, loads the new model beside the old one and swaps it in whole. A load that fails
on a warm container is logged and the old model keeps serving; on a cold container it raises
`ModelUnavailableError` (a 503). A failed cold load is not retried for `FAILED_LOAD_BACKOFF_S`
(requests meanwhile get the same 503 at once, without touching S3), and a pointer whose model
failed its integrity check is remembered until the pointer changes, so a bad model is downloaded
once per container, not at every refresh.

The bytes are checked against the pointer's size and sha256 *before* unpickling, and the
unpickler resolves only the globals in `ALLOWED_GLOBALS`, so a tampered or foreign pickle is
refused before any of its code can run.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from recsys.artifact import ModelArtifact
from recsys.config import Settings
from recsys.errors import ModelIntegrityError, ModelUnavailableError
from recsys.uri import POINTER, ModelUri

logger = logging.getLogger(__name__)

#: Every global a model pickle may name: numpy's array and dtype reconstruction, and the artifact.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("recsys.artifact", "ModelArtifact"),
    }
)

#: After a failed cold load, requests get the same 503 for this long before the next attempt.
FAILED_LOAD_BACKOFF_S = 5.0
#: Bounded so that a cold start against an unreachable S3 fails within about three seconds.
S3_TIMEOUTS = {"connect_timeout": 1.0, "read_timeout": 1.0, "max_attempts": 2}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise ModelIntegrityError(f"model pickle refers to {module}.{name}, which is not allowed")
        return super().find_class(module, name)


def load_artifact(data: bytes, *, sha256: str, size: int) -> ModelArtifact:
    """Verify `data` against the pointer's size and sha256, then unpickle it safely."""
    if len(data) != size:
        raise ModelIntegrityError(f"model is {len(data)} bytes, the pointer says {size}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelIntegrityError(f"model sha256 is {digest}, the pointer says {sha256}")
    try:
        model = RestrictedUnpickler(io.BytesIO(data)).load()
    except ModelIntegrityError:
        raise
    except Exception as exc:  # any malformed pickle: report it, never let it crash the function
        raise ModelIntegrityError(f"model pickle does not load: {exc}") from exc
    if type(model) is not ModelArtifact:
        raise ModelIntegrityError(f"model pickle holds a {type(model).__name__}, not a ModelArtifact")
    try:
        ModelArtifact.validate(model)  # the class's own check: the instance's attribute may be shadowed
    except Exception as exc:  # whatever a hostile state makes the check raise, it is a bad model
        raise ModelIntegrityError(f"model is inconsistent: {type(exc).__name__}: {exc}") from exc
    return model


class Reader(Protocol):
    """Reads a model store: the pointer's change tag, and whole files."""

    def tag(self) -> str:
        """A value that changes whenever `latest.json` changes (its ETag)."""
        ...

    def read(self, relative: str) -> bytes: ...


class LocalReader:
    def __init__(self, uri: ModelUri) -> None:
        self.uri = uri

    def tag(self) -> str:
        return hashlib.sha256(self.read(POINTER)).hexdigest()

    def read(self, relative: str) -> bytes:
        try:
            return Path(self.uri.key(relative)).read_bytes()
        except OSError as exc:
            raise ModelUnavailableError(f"cannot read {self.uri.key(relative)}: {exc.strerror}") from exc


class S3Reader:
    def __init__(self, uri: ModelUri, client: Any) -> None:
        self.uri = uri
        self.client = client

    def tag(self) -> str:
        return str(self._call("head_object", POINTER)["ETag"])

    def read(self, relative: str) -> bytes:
        body = self._call("get_object", relative)["Body"]
        try:
            return bytes(body.read())
        except Exception as exc:
            raise ModelUnavailableError(f"reading s3://{self.uri.bucket}/{self.uri.key(relative)}: {exc}") from exc

    def _call(self, operation: str, relative: str) -> dict[str, Any]:
        key = self.uri.key(relative)
        try:
            return getattr(self.client, operation)(Bucket=self.uri.bucket, Key=key)  # type: ignore[no-any-return]
        except Exception as exc:  # botocore raises a zoo of types; all of them mean "unavailable"
            raise ModelUnavailableError(f"s3://{self.uri.bucket}/{key}: {_describe(exc)}") from exc


def s3_client() -> Any:
    """A boto3 S3 client with bounded timeouts and retries (boto3 is imported only here)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=S3_TIMEOUTS["connect_timeout"],
        read_timeout=S3_TIMEOUTS["read_timeout"],
        retries={"total_max_attempts": S3_TIMEOUTS["max_attempts"], "mode": "standard"},
    )
    return boto3.client("s3", config=config)


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
    on_load : callable(model, seconds), optional
        Told of every model loaded (for metrics).
    """

    def __init__(
        self,
        settings: Settings,
        reader: Reader | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_load: Callable[[ModelArtifact, float], None] | None = None,
    ) -> None:
        self.settings = settings
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
            self._reader = reader_for(self.settings.model_uri)
        return self._reader

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
            tag = self.reader.tag()
            if tag == self._rejected_tag:
                raise ModelIntegrityError("the pointer still names the model that failed its integrity check")
            return self._load(tag)
        except ModelUnavailableError as exc:
            self._failure = (self._clock(), exc)
            raise

    def _refresh(self) -> None:
        # One request checks; concurrent ones keep serving the current model meanwhile.
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            self._checked_at = self._clock()
            tag = self.reader.tag()
            if tag not in (self._tag, self._rejected_tag):
                self._load(tag)
        except ModelUnavailableError as exc:
            logger.warning("model refresh failed, still serving %s: %s", self._model and self._model.version, exc)
        finally:
            self._refresh_lock.release()

    def _load(self, tag: str) -> ModelArtifact:
        """Load the model the pointer (read with change tag `tag`) names; remember `tag` if it is bad."""
        try:
            return self._load_pointer(tag)
        except ModelIntegrityError:
            self._rejected_tag = tag
            raise

    def _load_pointer(self, tag: str) -> ModelArtifact:
        started = time.perf_counter()
        raw = self.reader.read(POINTER)
        pointer = _parse_pointer(raw)
        data = self.reader.read(pointer["key"])
        model = load_artifact(data, sha256=pointer["sha256"], size=pointer["size"])
        size = len(data)
        del data
        seconds = time.perf_counter() - started
        self._model, self._tag, self._checked_at = model, tag, self._clock()
        self._failure = None
        # The model and the modules loaded so far live as long as the container: move them out of
        # the cyclic collector's generations, so a full collection during a request no longer walks
        # them. freeze() is free; a gc.collect() first would cost 40-60 ms of cold start here. A
        # replaced model is still freed: nothing in it forms a cycle, so its reference count frees it.
        gc.freeze()
        logger.info("loaded model %s (%d bytes) in %.3f s", model.version, size, seconds)
        if self._on_load is not None:
            self._on_load(model, seconds)
        return model


def _parse_pointer(raw: bytes) -> dict[str, Any]:
    try:
        pointer = json.loads(raw)
        checked = {
            "version": str(pointer["version"]),
            "key": str(pointer["key"]),
            "sha256": str(pointer["sha256"]),
            "size": int(pointer["size"]),
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailableError(f"{POINTER} is malformed: {exc}") from exc
    if checked["key"].startswith("/") or ".." in checked["key"].split("/"):
        raise ModelIntegrityError(f"{POINTER} names a key outside the store: {checked['key']!r}")
    return checked


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'error')} {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
