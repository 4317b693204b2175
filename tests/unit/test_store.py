from __future__ import annotations

import hashlib
import json
import os
import pickle
import pickletools
import subprocess
from pathlib import Path

import numpy as np
import pytest

from recsys.config import Settings
from recsys.errors import ModelIntegrityError, ModelUnavailableError
from recsys.store import ALLOWED_GLOBALS, FAILED_LOAD_BACKOFF_S, ModelStore, load_artifact
from recsys.uri import ModelUri
from tests.unit.test_artifact import tiny

pytestmark = pytest.mark.unit


class _Exploit:
    def __init__(self, call: object, *args: object) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.call, self.args


def _load(data: bytes) -> object:
    return load_artifact(data, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


@pytest.mark.parametrize("make", [
    lambda s: _Exploit(os.system, f"touch {s}"),
    lambda s: _Exploit(eval, f"open({str(s)!r}, 'w')"),
    lambda s: _Exploit(subprocess.Popen, ["touch", str(s)]),
    lambda s: _Exploit(Path.touch, Path(s)),
])  # fmt: skip
def test_unsafe_pickle_is_refused_before_running(tmp_path: Path, make: object) -> None:
    # GIVEN a pickle whose reducer would create a sentinel file
    sentinel = tmp_path / "pwned"
    payload = pickle.dumps(make(sentinel))  # type: ignore[operator]
    # WHEN it is loaded THEN it is refused and the sentinel never appears
    with pytest.raises(ModelIntegrityError, match="not allowed"):
        _load(payload)
    assert not sentinel.exists()


def test_the_payloads_are_real_plain_pickle_runs_them(tmp_path: Path) -> None:
    # the control for the test above: the same bytes through pickle.loads do run code
    sentinel = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Exploit(os.system, f"touch {sentinel}")))  # noqa: S301 - the point
    assert sentinel.exists()


def test_pickle_of_another_class_is_refused() -> None:
    with pytest.raises(ModelIntegrityError, match="not allowed"):
        _load(pickle.dumps(Path("/etc/passwd")))


def test_sha256_mismatch_is_refused_without_unpickling() -> None:
    data = bytearray(pickle.dumps(tiny(), protocol=5))
    digest = hashlib.sha256(data).hexdigest()
    data[len(data) // 2] ^= 1  # one byte changed
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_artifact(bytes(data), sha256=digest, size=len(data))


def test_size_mismatch_is_refused() -> None:
    data = pickle.dumps(tiny(), protocol=5)
    with pytest.raises(ModelIntegrityError, match="bytes"):
        load_artifact(data[:-1], sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def test_real_artifact_needs_only_allowed_globals() -> None:
    # GIVEN the pickle training writes WHEN its opcodes are read THEN every global it names is allowed
    data = pickle.dumps(tiny(), protocol=5)
    named, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            named.add((strings[-2], strings[-1]))
        elif op.name == "GLOBAL":
            named.add(tuple(arg.split(" ", 1)))
    assert named, "expected the pickle to name at least the artifact class"
    assert named <= ALLOWED_GLOBALS
    assert _load(data).version == "v1"


class MemoryReader:
    """A model store in memory that counts what is read; `fail` makes every call unavailable."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.reads: list[str] = []
        self.fail = False

    def publish(self, version: str, blob: bytes, sha256: str | None = None) -> None:
        key = f"models/{version}/model.pkl"
        self.files[key] = blob
        pointer = {"version": version, "key": key, "sha256": sha256 or hashlib.sha256(blob).hexdigest(),
                   "size": len(blob)}  # fmt: skip
        self.files["latest.json"] = json.dumps(pointer).encode()

    def tag(self) -> str:
        if self.fail:
            raise ModelUnavailableError("s3 is down")
        return hashlib.sha256(self.files["latest.json"]).hexdigest()

    def read(self, relative: str) -> bytes:
        if self.fail:
            raise ModelUnavailableError("s3 is down")
        self.reads.append(relative)
        return self.files[relative]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _store(reader: MemoryReader, clock: Clock, refresh: float = 0.0) -> ModelStore:
    return ModelStore(Settings(ModelUri.parse("/unused"), refresh_seconds=refresh), reader=reader, clock=clock)


def _blob(version: str) -> bytes:
    return pickle.dumps(tiny(provenance={"version": version}), protocol=5)


def test_a_failed_cold_load_is_not_retried_within_the_backoff() -> None:
    # GIVEN a cold container whose S3 is down
    reader, clock = MemoryReader(), Clock()
    reader.publish("v1", _blob("v1"))
    reader.fail = True
    store = _store(reader, clock)
    with pytest.raises(ModelUnavailableError):
        store.get()
    # WHEN S3 is back but the backoff has not passed THEN requests get the same 503 without a read
    reader.fail = False
    clock.now += FAILED_LOAD_BACKOFF_S / 2
    with pytest.raises(ModelUnavailableError, match="s3 is down"):
        store.get()
    assert reader.reads == []
    # WHEN it has passed THEN the next request loads the model
    clock.now += FAILED_LOAD_BACKOFF_S
    assert store.get().version == "v1"


def test_a_rejected_model_is_downloaded_once_until_the_pointer_changes() -> None:
    # GIVEN a warm container that checks the pointer at every request
    reader, clock = MemoryReader(), Clock()
    reader.publish("v1", _blob("v1"))
    store = _store(reader, clock, refresh=0.0)
    assert store.get().version == "v1"
    # WHEN a model that fails its sha256 is published THEN it is downloaded once, and v1 keeps serving
    reader.publish("bad", _blob("bad"), sha256="0" * 64)
    for _ in range(5):
        clock.now += 1
        assert store.get().version == "v1"
    assert reader.reads.count("models/bad/model.pkl") == 1
    # WHEN a good model follows THEN it is loaded
    reader.publish("v2", _blob("v2"))
    clock.now += 1
    assert store.get().version == "v2"


def test_a_cold_container_does_not_download_a_rejected_model_again() -> None:
    reader, clock = MemoryReader(), Clock()
    reader.publish("bad", _blob("bad"), sha256="0" * 64)
    store = _store(reader, clock)
    for _ in range(3):
        with pytest.raises(ModelIntegrityError):
            store.get()
        clock.now += FAILED_LOAD_BACKOFF_S + 1
    assert reader.reads.count("models/bad/model.pkl") == 1


def test_any_exception_from_a_hostile_state_is_an_integrity_error() -> None:
    # validate shadowed by an allowed global: calling it on the instance would raise TypeError
    model = tiny()
    vars(model)["validate"] = np.dtype
    data = pickle.dumps(model, protocol=5)
    with pytest.raises(ModelIntegrityError, match="unexpected state"):
        _load(data)
