"""Loading the serving model: pointer, download, verify, restricted unpickle, cache, refresh.

A function keeps one `ModelStore` per container, which loads only the parts of the model that the
function serves (`recsys.artifact.FUNCTION_PARTS`). The first request loads the parts named by
``latest.json``; at most every `Settings.refresh_seconds` one request checks the pointer's ETag and,
when it changed, loads the new model beside the old one and swaps it in whole. A load that fails
on a warm container is logged and the old model keeps serving; on a cold container it raises
`ModelUnavailableError` (a 503). A failed cold load is not retried for `FAILED_LOAD_BACKOFF_S`
(requests meanwhile get the same 503 at once, without touching S3), and a pointer whose model
failed its integrity check is remembered until the pointer changes, so a bad model is downloaded
once per container, not at every refresh.

Every part's bytes are checked against the pointer's size and sha256 *before* unpickling, and the
unpickler resolves only numpy's array reconstruction (`ARRAY_GLOBALS`), so a tampered or foreign
pickle is refused before any of its code can run. All parts come from the one pointer read, and
each part names its version inside too, so a model never mixes two versions. A pointer of the
older single-file layout (``key``, ``sha256``, ``size``) still loads, whole.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from recsys.artifact import PARTS, ModelArtifact
from recsys.config import Settings
from recsys.errors import ModelIntegrityError, ModelUnavailableError
from recsys.s3 import S3Client, S3Error
from recsys.uri import POINTER, ModelUri

logger = logging.getLogger(__name__)

#: Every global a part's pickle may name: numpy's array and dtype reconstruction.
ARRAY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
    }
)
#: A whole-model pickle of the single-file layout may also name the artifact class.
ALLOWED_GLOBALS = ARRAY_GLOBALS | {("recsys.artifact", "ModelArtifact")}

#: After a failed cold load, requests get the same 503 for this long before the next attempt.
FAILED_LOAD_BACKOFF_S = 5.0
#: Bounded so that a cold start against an unreachable S3 fails within about three seconds.
S3_TIMEOUTS = {"connect_timeout": 1.0, "read_timeout": 1.0, "max_attempts": 2}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in `allowed` (by default `ARRAY_GLOBALS`)."""

    def __init__(self, file: io.BytesIO, allowed: frozenset[tuple[str, str]] = ARRAY_GLOBALS) -> None:
        super().__init__(file)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise ModelIntegrityError(f"model pickle refers to {module}.{name}, which is not allowed")
        return super().find_class(module, name)


def _verified_unpickle(data: bytes, sha256: str, size: int, what: str, allowed: frozenset[tuple[str, str]]) -> Any:
    if len(data) != size:
        raise ModelIntegrityError(f"{what} is {len(data)} bytes, the pointer says {size}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelIntegrityError(f"{what} sha256 is {digest}, the pointer says {sha256}")
    try:
        return RestrictedUnpickler(io.BytesIO(data), allowed).load()
    except ModelIntegrityError:
        raise
    except Exception as exc:  # any malformed pickle: report it, never let it crash the function
        raise ModelIntegrityError(f"{what} pickle does not load: {exc}") from exc


def dump_parts(model: ModelArtifact) -> dict[str, bytes]:
    """Every part of `model`, pickled with its name and the model's version (see `load_part`)."""
    return {
        name: pickle.dumps({"part": name, "version": model.version, "fields": model.part(name)}, protocol=5)
        for name in PARTS
    }


def load_part(data: bytes, *, name: str, version: str, sha256: str, size: int) -> dict[str, Any]:
    """Verify one part's bytes against the pointer, unpickle them safely: the part's fields.

    The part must say it is part `name` of model `version`, so that parts of two versions never mix.
    """
    obj = _verified_unpickle(data, sha256, size, f"part {name}", ARRAY_GLOBALS)
    if not isinstance(obj, dict) or set(obj) != {"part", "version", "fields"}:
        raise ModelIntegrityError(f"part {name} is not a model part")
    if obj["part"] != name or obj["version"] != version:
        raise ModelIntegrityError(f"part {name} of {version} holds part {obj['part']!r} of {obj['version']!r}")
    return obj["fields"]  # type: ignore[no-any-return]


def load_artifact(data: bytes, *, sha256: str, size: int) -> ModelArtifact:
    """Verify a whole-model pickle (the single-file layout) against the pointer, then unpickle it safely."""
    model = _verified_unpickle(data, sha256, size, "model", ALLOWED_GLOBALS)
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
    """Reads a store under an S3 prefix through a client with ``head(bucket, key)`` and ``get(bucket, key)``:
    `recsys.s3.S3Client`, or `Boto3Objects`."""

    def __init__(self, uri: ModelUri, client: Any) -> None:
        self.uri = uri
        self.client = client

    def tag(self) -> str:
        return str(self._call("head", POINTER)["etag"])

    def read(self, relative: str) -> bytes:
        return self._call("get", relative)  # type: ignore[no-any-return]

    def _call(self, operation: str, relative: str) -> Any:
        key = self.uri.key(relative)
        try:
            return getattr(self.client, operation)(self.uri.bucket, key)
        except Exception as exc:  # botocore raises a zoo of types; all of them mean "unavailable"
            raise ModelUnavailableError(f"s3://{self.uri.bucket}/{key}: {_describe(exc)}") from exc


class Boto3Objects:
    """boto3's S3 client behind the interface of `recsys.s3.S3Client` (``head``, ``get``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def head(self, bucket: str, key: str) -> dict[str, str]:
        return {"etag": self.client.head_object(Bucket=bucket, Key=key)["ETag"]}

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


def s3_client() -> Any:
    """The S3 client of serving, with bounded timeouts and attempts (`S3_TIMEOUTS`).

    `recsys.s3.S3Client` when the environment holds credentials, as Lambda's does: it needs no
    botocore, whose import and client set-up are most of a cold start's fixed cost. Otherwise a
    boto3 client, which finds a developer's profile or SSO session (boto3 is imported only then).
    """
    client = S3Client.from_env(os.environ, timeout=S3_TIMEOUTS["read_timeout"], attempts=S3_TIMEOUTS["max_attempts"])
    if client is not None:
        return client
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=S3_TIMEOUTS["connect_timeout"],
        read_timeout=S3_TIMEOUTS["read_timeout"],
        retries={"total_max_attempts": S3_TIMEOUTS["max_attempts"], "mode": "standard"},
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
    on_load : callable(model, seconds), optional
        Told of every model loaded (for metrics).
    parts : tuple of str, optional
        The parts to load (`recsys.artifact.PARTS`); all of them when None.

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
    ) -> None:
        self.settings = settings
        self.parts = parts
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
            self._reader = reader_for(self.settings.model_uri)
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
        model, size = read_model(self.reader, self.parts)
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


def read_model(reader: Reader, parts: tuple[str, ...] | None = None) -> tuple[ModelArtifact, int]:
    """The model `latest.json` names, with only `parts` (all when None), and the bytes read.

    Reads the pointer once, then each part it names for that version, verifying every part
    before unpickling it. Raises ModelUnavailableError when something cannot be read, and its
    subclass ModelIntegrityError when something read is not what the pointer promised.
    """
    pointer = _parse_pointer(reader.read(POINTER))
    if "whole" in pointer:  # the single-file layout
        entry = pointer["whole"]
        data = reader.read(entry["key"])
        return load_artifact(data, sha256=entry["sha256"], size=entry["size"]), len(data)
    entries = pointer["parts"]
    wanted = ("catalog", *(p for p in (entries if parts is None else parts) if p != "catalog"))
    missing = [name for name in wanted if name not in entries]
    if missing:
        raise ModelIntegrityError(f"{POINTER} of {pointer['version']} names no part {', '.join(missing)}")
    fields, size = {}, 0
    for name in wanted:
        entry = entries[name]
        data = reader.read(entry["key"])
        size += len(data)
        fields[name] = load_part(
            data, name=name, version=pointer["version"], sha256=entry["sha256"], size=entry["size"]
        )
        del data
    try:
        return ModelArtifact.from_parts(fields), size
    except Exception as exc:  # whatever a hostile state makes the checks raise, it is a bad model
        raise ModelIntegrityError(f"model is inconsistent: {type(exc).__name__}: {exc}") from exc


def open_model(location: str, parts: tuple[str, ...] | None = None) -> ModelArtifact:
    """The model a store (``s3://bucket/prefix`` or a folder) serves now: for tools and tests."""
    return read_model(reader_for(ModelUri.parse(location)), parts)[0]


def _parse_pointer(raw: bytes) -> dict[str, Any]:
    """The pointer as ``{"version", "parts": {name: entry}}``, or ``{"version", "whole": entry}``
    for the single-file layout; an entry is ``{"key", "sha256", "size"}``."""
    try:
        pointer = json.loads(raw)
        version = str(pointer["version"])
        if "parts" in pointer:
            parsed = {"version": version, "parts": {str(n): _entry(e) for n, e in dict(pointer["parts"]).items()}}
        else:
            parsed = {"version": version, "whole": _entry(pointer)}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailableError(f"{POINTER} is malformed: {exc}") from exc
    entries = parsed["parts"] if "parts" in parsed else {"model": parsed["whole"]}
    for entry in entries.values():
        if entry["key"].startswith("/") or ".." in entry["key"].split("/"):
            raise ModelIntegrityError(f"{POINTER} names a key outside the store: {entry['key']!r}")
    return parsed


def _entry(raw: Any) -> dict[str, Any]:
    return {"key": str(raw["key"]), "sha256": str(raw["sha256"]), "size": int(raw["size"])}


def _describe(exc: Exception) -> str:
    if isinstance(exc, S3Error):
        return str(exc)
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'error')} {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
