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

from recsys.artifact import FUNCTION_PARTS, PARTS
from recsys.config import Settings
from recsys.errors import ModelIntegrityError, ModelUnavailableError
from recsys.store import ARRAY_GLOBALS, FAILED_LOAD_BACKOFF_S, ModelStore, dump_parts, load_artifact, load_part
from recsys.uri import ModelUri
from scripts.samlocal import pin
from tests.unit.test_artifact import tiny

pytestmark = pytest.mark.unit


class _Exploit:
    def __init__(self, call: object, *args: object) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.call, self.args


def _load(data: bytes) -> object:
    return load_part(data, name="catalog", version="v1", sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def _load_whole(data: bytes) -> object:
    return load_artifact(data, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


@pytest.mark.parametrize("load", [_load, _load_whole], ids=["part", "single-file"])
@pytest.mark.parametrize("make", [
    lambda s: _Exploit(os.system, f"touch {s}"),
    lambda s: _Exploit(eval, f"open({str(s)!r}, 'w')"),
    lambda s: _Exploit(subprocess.Popen, ["touch", str(s)]),
    lambda s: _Exploit(Path.touch, Path(s)),
])  # fmt: skip
def test_unsafe_pickle_is_refused_before_running(tmp_path: Path, make: object, load: object) -> None:
    # GIVEN a pickle whose reducer would create a sentinel file
    sentinel = tmp_path / "pwned"
    payload = pickle.dumps(make(sentinel))  # type: ignore[operator]
    # WHEN it is loaded THEN it is refused and the sentinel never appears
    with pytest.raises(ModelIntegrityError, match="not allowed"):
        load(payload)  # type: ignore[operator]
    assert not sentinel.exists()


def test_the_payloads_are_real_plain_pickle_runs_them(tmp_path: Path) -> None:
    # the control for the test above: the same bytes through pickle.loads do run code
    sentinel = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Exploit(os.system, f"touch {sentinel}")))  # noqa: S301 - the point
    assert sentinel.exists()


def test_pickle_of_another_class_is_refused() -> None:
    with pytest.raises(ModelIntegrityError, match="not allowed"):
        _load(pickle.dumps(Path("/etc/passwd")))


def test_a_part_may_not_name_the_artifact_class() -> None:
    # the single-file layout needed the class; a part is plain arrays, so its allow-list is narrower
    with pytest.raises(ModelIntegrityError, match="recsys.artifact.ModelArtifact, which is not allowed"):
        _load(pickle.dumps(tiny(), protocol=5))


def test_sha256_mismatch_is_refused_without_unpickling() -> None:
    data = bytearray(dump_parts(tiny())["catalog"])
    digest = hashlib.sha256(data).hexdigest()
    data[len(data) // 2] ^= 1  # one byte changed
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_part(bytes(data), name="catalog", version="v1", sha256=digest, size=len(data))


def test_size_mismatch_is_refused() -> None:
    data = dump_parts(tiny())["catalog"]
    with pytest.raises(ModelIntegrityError, match="bytes"):
        load_part(data[:-1], name="catalog", version="v1", sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def test_a_part_of_another_version_or_name_is_refused() -> None:
    # GIVEN the catalog of v1 WHEN a pointer of v2, or one that calls it another part, names it THEN refused
    data = dump_parts(tiny())["catalog"]
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(ModelIntegrityError, match="holds part 'catalog' of 'v1'"):
        load_part(data, name="catalog", version="v2", sha256=digest, size=len(data))
    with pytest.raises(ModelIntegrityError, match="holds part 'catalog' of 'v1'"):
        load_part(data, name="neighbours", version="v1", sha256=digest, size=len(data))


def test_real_parts_need_only_numpy_globals() -> None:
    # GIVEN the parts training writes WHEN their opcodes are read THEN every global they name is numpy's
    for name, data in dump_parts(tiny()).items():
        named, strings = set(), []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(arg)
            elif op.name == "STACK_GLOBAL":
                named.add((strings[-2], strings[-1]))
            elif op.name == "GLOBAL":
                named.add(tuple(arg.split(" ", 1)))
        assert named, "expected the pickle to name at least numpy's array reconstruction"
        assert named <= ARRAY_GLOBALS, name
        fields = load_part(data, name=name, version="v1", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        assert set(fields) == set(PARTS[name])


class MemoryReader:
    """A model store in memory that counts what is read; `fail` makes every call unavailable."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.reads: list[str] = []
        self.fail = False

    def publish(self, version: str, parts: dict[str, bytes], sha256: str | None = None) -> None:
        """Publish `parts` as training does; `sha256` replaces the catalog's true digest in the pointer."""
        entries = {}
        for name, blob in parts.items():
            key = f"models/{version}/{name}.pkl"
            self.files[key] = blob
            digest = sha256 if sha256 and name == "catalog" else hashlib.sha256(blob).hexdigest()
            entries[name] = {"key": key, "sha256": digest, "size": len(blob)}
        self.files["latest.json"] = json.dumps({"version": version, "parts": entries}).encode()

    def publish_whole(self, version: str, blob: bytes) -> None:
        """Publish in the single-file layout of earlier releases."""
        key = f"models/{version}/model.pkl"
        self.files[key] = blob
        pointer = {"version": version, "key": key, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
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


def _store(
    reader: MemoryReader, clock: Clock, refresh: float = 0.0, parts: tuple[str, ...] | None = None
) -> ModelStore:
    settings = Settings(ModelUri.parse("/unused"), refresh_seconds=refresh)
    return ModelStore(settings, reader=reader, clock=clock, parts=parts)


def _blob(version: str) -> dict[str, bytes]:
    return dump_parts(tiny(provenance={"version": version}))


@pytest.mark.parametrize("function", sorted(FUNCTION_PARTS))
def test_a_function_reads_only_its_parts(function: str) -> None:
    # GIVEN a published model WHEN a function's store loads it THEN it reads the pointer and its parts only
    reader, clock = MemoryReader(), Clock()
    reader.publish("v1", _blob("v1"))
    store = _store(reader, clock, parts=FUNCTION_PARTS[function])
    model = store.get()
    parts = FUNCTION_PARTS[function]
    assert sorted(reader.reads) == sorted(["latest.json", *(f"models/v1/{name}.pkl" for name in parts)])
    assert model.parts == tuple(name for name in PARTS if name in parts)
    assert store.bytes_read == sum(len(reader.files[f"models/v1/{name}.pkl"]) for name in parts)
    # THEN what it did not load is absent, not silently empty
    absent = next(name for name in PARTS if name not in parts)
    with pytest.raises(AttributeError):
        getattr(model, PARTS[absent][0])


def test_a_pointer_missing_a_needed_part_is_refused() -> None:
    reader, clock = MemoryReader(), Clock()
    parts = _blob("v1")
    del parts["neighbours"]
    reader.publish("v1", parts)
    with pytest.raises(ModelIntegrityError, match="names no part neighbours"):
        _store(reader, clock, parts=FUNCTION_PARTS["SimilarFunction"]).get()
    # a function that does not need that part still serves
    assert _store(reader, clock, parts=FUNCTION_PARTS["HistoryFunction"]).get().version == "v1"


def test_parts_of_two_versions_never_mix() -> None:
    # GIVEN a pointer of v2 whose user vectors are v1's file (with v1's own digest, so only the
    # version inside the part can tell) WHEN it is loaded THEN it is refused
    reader, clock = MemoryReader(), Clock()
    mixed = {**_blob("v2"), "user_vectors": _blob("v1")["user_vectors"]}
    reader.publish("v2", mixed)
    with pytest.raises(ModelIntegrityError, match="holds part 'user_vectors' of 'v1'"):
        _store(reader, clock, parts=FUNCTION_PARTS["RecommendFunction"]).get()


def test_a_model_of_the_single_file_layout_still_loads_whole() -> None:
    # GIVEN a store whose pointer names one pickled ModelArtifact (as releases before the parts wrote)
    reader, clock = MemoryReader(), Clock()
    reader.publish_whole("old", pickle.dumps(tiny(provenance={"version": "old"}), protocol=5))
    # WHEN a function loads it THEN it serves it, every part present
    model = _store(reader, clock, parts=FUNCTION_PARTS["SimilarFunction"]).get()
    assert model.version == "old" and model.parts == tuple(PARTS)


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
    assert reader.reads.count("models/bad/catalog.pkl") == 1
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
    assert reader.reads.count("models/bad/catalog.pkl") == 1


def test_any_exception_from_a_hostile_state_is_an_integrity_error() -> None:
    # validate shadowed by an allowed global: calling it on the instance would raise TypeError
    model = tiny()
    vars(model)["validate"] = np.dtype
    data = pickle.dumps(model, protocol=5)
    with pytest.raises(ModelIntegrityError, match="unexpected state"):
        _load_whole(data)


def test_training_and_the_layer_ship_the_same_numpy() -> None:
    # what training pickles, the layer unpickles: one numpy version on both sides
    root = Path(__file__).resolve().parents[2]
    assert pin(root / "training/requirements.txt", "numpy") == pin(root / "layers/recsys/requirements.txt", "numpy")


def test_a_model_the_previous_release_published_still_serves() -> None:
    # GIVEN a whole-model pickle written by the python3.11 release (numpy 2.2.6, single-file layout)
    data = (Path(__file__).parent / "fixtures/model-schema3-numpy-2.2.6.pkl").read_bytes()
    reader, clock = MemoryReader(), Clock()
    reader.publish_whole("released-numpy-2.2.6", data)
    # WHEN this release's store loads it (numpy 2.5) THEN it serves the same numbers as this one would
    model = _store(reader, clock, parts=FUNCTION_PARTS["RecommendFunction"]).get()
    fresh = tiny()
    assert model.version == "released-numpy-2.2.6"
    for name in PARTS["item_vectors"] + PARTS["user_vectors"]:
        np.testing.assert_array_equal(getattr(model, name), getattr(fresh, name))
    assert model.recommend(0, 2)[0].tolist() == fresh.recommend(0, 2)[0].tolist()


def test_a_pointer_that_names_no_parts_is_an_integrity_error() -> None:
    reader, clock = MemoryReader(), Clock()
    reader.files["latest.json"] = json.dumps({"version": "v1", "parts": {}}).encode()
    with pytest.raises(ModelIntegrityError, match="names no part catalog"):
        _store(reader, clock).get()
