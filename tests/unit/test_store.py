from __future__ import annotations

import hashlib
import importlib
import json
import os
import pickle
import pickletools
import struct
import subprocess
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from devstack.docker import pin
from devstack.template import model_parts
from recsys.artifact import ModelArtifact
from recsys.config import Settings
from recsys.errors import ModelIntegrityError, ModelUnavailableError
from recsys.parts import ARRAY_GLOBALS, MAX_PART_BYTES, PARTS, Pointer, RestrictedUnpickler, frame, load_part, unframe
from recsys.s3 import Deadline
from recsys.store import FAILED_LOAD_BACKOFF_S, ModelStore, at_once
from recsys.uri import ModelUri
from tests.unit.test_artifact import tiny

pytestmark = pytest.mark.unit

FUNCTION_PARTS = model_parts()


class _Exploit:
    def __init__(self, call: object, *args: object) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.call, self.args


def _load(pickled: bytes) -> object:
    """A pickle loaded as a part: framed as training frames one, with its true digest and size."""
    data = frame(pickled, [])
    return load_part(data, name="catalog", version="v1", sha256=hashlib.sha256(data).hexdigest(), size=len(data))


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


def test_a_part_may_not_name_the_artifact_class() -> None:
    with pytest.raises(ModelIntegrityError, match="recsys.artifact.ModelArtifact, which is not allowed"):
        _load(pickle.dumps(tiny(), protocol=5))


def test_sha256_mismatch_is_refused_without_unpickling() -> None:
    data = bytearray(tiny().to_parts()["catalog"])
    digest = hashlib.sha256(data).hexdigest()
    data[len(data) // 2] ^= 1  # one byte changed
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_part(bytes(data), name="catalog", version="v1", sha256=digest, size=len(data))


def test_size_mismatch_is_refused() -> None:
    data = tiny().to_parts()["catalog"]
    with pytest.raises(ModelIntegrityError, match="bytes"):
        load_part(data[:-1], name="catalog", version="v1", sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def test_a_part_of_another_version_or_name_is_refused() -> None:
    # GIVEN the catalog of v1 WHEN a pointer of v2, or one that calls it another part, names it THEN refused
    data = tiny().to_parts()["catalog"]
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(ModelIntegrityError, match="holds part 'catalog' of 'v1'"):
        load_part(data, name="catalog", version="v2", sha256=digest, size=len(data))
    with pytest.raises(ModelIntegrityError, match="holds part 'catalog' of 'v1'"):
        load_part(data, name="neighbours", version="v1", sha256=digest, size=len(data))


def test_real_parts_need_only_numpy_globals() -> None:
    # GIVEN the parts training writes WHEN their opcodes are read THEN every global they name is numpy's
    for name, data in tiny().to_parts().items():
        named, strings = set(), []
        for op, arg, _ in pickletools.genops(bytes(unframe(memoryview(data))[0])):
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


def test_a_parts_arrays_are_read_only_views_of_the_bytes_read() -> None:
    # GIVEN the histories part as published WHEN it is loaded THEN its arrays are the downloaded bytes
    # themselves (nothing copied), and nothing can write to them
    data = tiny().to_parts()["histories"]
    fields = load_part(data, name="histories", version="v1", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    body = np.frombuffer(data, dtype=np.uint8)
    for name, value in fields.items():
        assert np.shares_memory(value, body), name
        assert not value.flags.writeable, name
        assert value.flags.aligned, name
        with pytest.raises(ValueError, match="read-only"):
            value[...] = 0


def test_a_plain_pickle_of_an_earlier_release_is_refused_with_what_to_do() -> None:
    envelope = {"part": "catalog", "version": "v1", "fields": tiny().part("catalog")}
    data = pickle.dumps(envelope, protocol=5)
    with pytest.raises(ModelIntegrityError, match="earlier release.*Republish"):
        load_part(data, name="catalog", version="v1", sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def _respan(data: bytes, index: int, offset: int, size: int) -> bytes:
    """`data` with the span of buffer `index` in its header replaced."""
    out = bytearray(data)
    struct.pack_into("<QQ", out, 24 + 16 * index, offset, size)
    return bytes(out)


@pytest.mark.parametrize(("how", "message"), [
    (lambda d: _respan(d, 0, len(d) - 8, 16), "buffer 0 out of range"),  # past the end
    (lambda d: _respan(d, 1, 30, 8), "buffer 1 out of range"),  # inside the header and the pickle
    (lambda d: _respan(d, 2, struct.unpack_from("<Q", d, 24 + 16)[0], 8), "buffer 2 out of range"),  # overlaps 1
    (lambda d: d[:20], "too short"),
    (lambda d: d[:16] + (1000).to_bytes(8, "little") + d[24:], "header out of range"),  # too many buffers
    (lambda d: d[:8] + (len(d)).to_bytes(8, "little") + d[16:], "header out of range"),  # pickle past the end
])  # fmt: skip
def test_a_frame_whose_header_lies_is_refused_before_unpickling(how: object, message: str) -> None:
    # GIVEN the catalog part with one span of its header rewritten (and the pointer's digest of it)
    data = how(tiny().to_parts()["catalog"])  # type: ignore[operator]
    # WHEN it is loaded THEN the header itself is refused
    with pytest.raises(ModelIntegrityError, match=message):
        load_part(data, name="catalog", version="v1", sha256=hashlib.sha256(data).hexdigest(), size=len(data))


class MemoryReader:
    """A model store in memory that counts what is read; `fail` makes every read unavailable."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.reads: list[str] = []
        self.fail: BaseException | None = None

    def publish(self, version: str, parts: dict[str, bytes], sha256: str | None = None) -> None:
        """Publish `parts` as training does; `sha256` replaces the catalog's true digest in the pointer."""
        pointer = Pointer.for_parts(version, parts, "2026-12-03T00:00:00Z").to_json()
        if sha256:
            pointer["parts"]["catalog"]["sha256"] = sha256
        for name, blob in parts.items():
            self.files[pointer["parts"][name]["key"]] = blob
        self.files["latest.json"] = json.dumps(pointer).encode()

    def read(
        self, relative: str, *, size: int | None = None, limit: int | None = None, deadline: Deadline | None = None
    ) -> bytes:
        if self.fail is not None:
            raise self.fail
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
    return tiny(provenance={"version": version}).to_parts()


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


def test_a_failed_cold_load_is_not_retried_within_the_backoff() -> None:
    # GIVEN a cold container whose S3 is down
    reader, clock = MemoryReader(), Clock()
    reader.publish("v1", _blob("v1"))
    reader.fail = ModelUnavailableError("s3 is down")
    store = _store(reader, clock)
    with pytest.raises(ModelUnavailableError):
        store.get()
    # WHEN S3 is back but the backoff has not passed THEN requests get the same 503 without a read
    reader.fail = None
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


def test_training_and_the_layer_ship_the_same_numpy() -> None:
    # what training pickles, the layer unpickles: one numpy version on both sides
    root = Path(__file__).resolve().parents[2]
    assert pin(root / "training/requirements.txt", "numpy") == pin(root / "layers/recsys/requirements.txt", "numpy")


def test_a_pointer_that_names_no_parts_is_an_integrity_error() -> None:
    reader, clock = MemoryReader(), Clock()
    reader.files["latest.json"] = json.dumps({"version": "v1", "parts": {}}).encode()
    with pytest.raises(ModelIntegrityError, match="names no part catalog"):
        _store(reader, clock).get()


# -- hostile stores (docs/RELIABILITY.md) ----------------------------------------------------


def _binunicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _class_patch_pickle() -> bytes:
    """90 bytes, protocol 2: the artifact class, then BUILD with slot state that would replace two
    of its methods for the whole process (``popular`` by None, ``validate`` by numpy.dtype)."""
    state = b"N}(" + _binunicode("popular") + b"N" + _binunicode("validate") + b"cnumpy\ndtype\nu\x86"
    return b"\x80\x02crecsys.artifact\nModelArtifact\n" + state + b"b."


def test_a_pickle_naming_the_artifact_class_changes_nothing_in_the_process() -> None:
    # GIVEN the class-patching pickle, published as a store of the single-file layout
    payload = _class_patch_pickle()
    reader, clock = MemoryReader(), Clock()
    reader.files["models/old/model.pkl"] = payload
    pointer = {"version": "old", "key": "models/old/model.pkl", "sha256": hashlib.sha256(payload).hexdigest(),
               "size": len(payload)}  # fmt: skip
    reader.files["latest.json"] = json.dumps(pointer).encode()
    methods = {name: ModelArtifact.__dict__[name] for name in ("popular", "validate")}
    try:
        # WHEN a function loads that store, or the bytes come as a part
        with pytest.raises(ModelIntegrityError, match="single-file layout .* republish"):
            _store(reader, clock).get()
        with pytest.raises(ModelIntegrityError, match="recsys.artifact.ModelArtifact, which is not allowed"):
            _load(payload)
        # THEN the model file is never read, and the class is what it was
        assert reader.reads == ["latest.json"]
        assert {name: ModelArtifact.__dict__[name] for name in methods} == methods
    finally:
        for name, method in methods.items():
            setattr(ModelArtifact, name, method)


@pytest.mark.parametrize("allowed", sorted(ARRAY_GLOBALS), ids=".".join)
def test_a_pickle_cannot_set_attributes_on_what_it_may_name(allowed: tuple[str, str]) -> None:
    # GIVEN a pickle that names an allowed global, then BUILDs an attribute onto it
    module, name = allowed
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"N}" + _binunicode("planted") + b"K\x01s\x86b."
    with warnings.catch_warnings():  # numpy.core.* are numpy 1's names, deprecated aliases now
        warnings.simplefilter("ignore", DeprecationWarning)
        real = getattr(importlib.import_module(module), name)
        # WHEN it is loaded as a part THEN it is refused, and the real object carries nothing new
        with pytest.raises(ModelIntegrityError):
            _load(payload)
    assert not hasattr(real, "planted")


HOSTILE_POINTERS = {
    "size Infinity": b'{"version": "v1", "parts": {"catalog": {"key": "k", "sha256": "%s", "size": Infinity}}}',
    "size 1e400": b'{"version": "v1", "parts": {"catalog": {"key": "k", "sha256": "%s", "size": 1e400}}}',
    "size of 5000 digits": b'{"version": "v1", "parts": {"catalog": {"key": "k", "sha256": "%s", "size": '
    + b"9" * 5000
    + b"}}}",
    "size as text": b'{"version": "v1", "parts": {"catalog": {"key": "k", "sha256": "%s", "size": "12"}}}',
    "size true": b'{"version": "v1", "parts": {"catalog": {"key": "k", "sha256": "%s", "size": true}}}',
    "size negative": b'{"version": "v1", "parts": {"catalog": {"key": "k", "sha256": "%s", "size": -1}}}',
    "size over the cap": b'{"version": "v1", "parts": {"catalog": {"key": "k", "sha256": "%s", "size": '
    + str(MAX_PART_BYTES + 1).encode()
    + b"}}}",
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "nested part entry": b'{"version": "v1", "parts": {"catalog": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}",
    "sha256 not hex": b'{"version": "v1", "parts": {"catalog": {"key": "k", "sha256": "zz", "size": 3}}}',
    "key outside": b'{"version": "v1", "parts": {"catalog": {"key": "../x", "sha256": "%s", "size": 3}}}',
    "version a path": b'{"version": "../v1", "parts": {"catalog": {"key": "k", "sha256": "%s", "size": 3}}}',
    "version a number": b'{"version": 1, "parts": {"catalog": {"key": "k", "sha256": "%s", "size": 3}}}',
    "unknown part": b'{"version": "v1", "parts": {"evil": {"key": "k", "sha256": "%s", "size": 3}}}',
    "parts a list": b'{"version": "v1", "parts": [1, 2]}',
    "an array": b"[1, 2, 3]",
    "not UTF-8": b'{"version": "\xff\xfe"}',
    "not JSON": b"<html>",
    "empty": b"",
}


@pytest.mark.parametrize("raw", HOSTILE_POINTERS.values(), ids=HOSTILE_POINTERS.keys())
def test_a_hostile_pointer_is_unavailable_cold_and_ignored_warm(raw: bytes) -> None:
    raw = raw.replace(b"%s", b"0" * 64)
    # GIVEN a cold container whose pointer holds it
    reader, clock = MemoryReader(), Clock()
    reader.files["latest.json"] = raw
    store = _store(reader, clock)
    # WHEN it is asked for the model THEN a ModelUnavailableError (a 503), and a backoff: the next
    # request within it does not read again
    with pytest.raises(ModelUnavailableError):
        store.get()
    with pytest.raises(ModelUnavailableError):
        store.get()
    assert reader.reads == ["latest.json"]
    # GIVEN a warm container serving v1 WHEN the pointer turns hostile THEN v1 keeps serving
    reader.publish("v1", _blob("v1"))
    warm = _store(reader, clock)
    assert warm.get().version == "v1"
    reader.files["latest.json"] = raw
    for _ in range(3):
        clock.now += 1
        assert warm.get().version == "v1"


def test_running_out_of_memory_is_transient_not_a_bad_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a good model, and an unpickling that runs out of memory once
    reader, clock = MemoryReader(), Clock()
    reader.publish("v1", _blob("v1"))
    real_load = RestrictedUnpickler.load
    calls = []

    def load_once_out_of_memory(self: RestrictedUnpickler) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError
        return real_load(self)

    monkeypatch.setattr(RestrictedUnpickler, "load", load_once_out_of_memory)
    store = _store(reader, clock)
    # WHEN the first load fails THEN it is a 503, not an integrity failure
    with pytest.raises(ModelUnavailableError) as failed:
        store.get()
    assert not isinstance(failed.value, ModelIntegrityError)
    # THEN after the backoff the same pointer loads: it was not remembered as a bad model
    clock.now += FAILED_LOAD_BACKOFF_S + 1
    assert store.get().version == "v1"


class RacingReader(MemoryReader):
    """A store where v2 is published right after anything reads only the pointer's tag."""

    def tag(self) -> str:
        tag = hashlib.sha256(self.files["latest.json"]).hexdigest()
        if "models/v2/catalog.pkl" not in self.files:
            self.publish("v2", _blob("v2"))
        return tag


def test_what_is_loaded_and_the_tag_it_is_known_by_come_from_one_read() -> None:
    # GIVEN a store where a publish lands between a tag read and a pointer read
    reader, clock = RacingReader(), Clock()
    reader.publish("v1", _blob("v1"))
    store = _store(reader, clock)
    # WHEN the store loads, then checks the pointer several times
    served = store.get().version
    for _ in range(3):
        clock.now += 1
        store.get()
    # THEN each model's parts were read once: no model is loaded twice because its tag was another's
    assert reader.reads.count(f"models/{served}/catalog.pkl") == 1
    assert all(reader.reads.count(key) <= 1 for key in reader.reads if key != "latest.json")


def test_each_read_of_a_load_has_the_same_deadline() -> None:
    # GIVEN a reader that records the deadline of every read
    seen: list[Deadline | None] = []

    class Recording(MemoryReader):
        def read(self, relative: str, **kwargs: object) -> bytes:
            seen.append(kwargs.get("deadline"))  # type: ignore[arg-type]
            return super().read(relative)

    reader, clock = Recording(), Clock()
    reader.publish("v1", _blob("v1"))
    settings = Settings(ModelUri.parse("/unused"), refresh_seconds=0.0, load_deadline_seconds=2.5)
    ModelStore(settings, reader=reader, clock=clock, parts=FUNCTION_PARTS["RecommendFunction"]).get()
    # THEN the pointer and every part were read under one deadline of the configured length
    assert len(seen) == 1 + len(FUNCTION_PARTS["RecommendFunction"])
    assert len({id(d) for d in seen}) == 1 and seen[0] is not None and seen[0].seconds == 2.5


def test_a_load_reads_its_parts_at_the_same_time() -> None:
    # GIVEN a store whose part reads each wait until every part's read has started (read one after
    # the other, the first would wait forever: the barrier's timeout only ends a broken test)
    parts = FUNCTION_PARTS["RecommendFunction"]
    barrier = threading.Barrier(len(parts), timeout=60)

    class Meeting(MemoryReader):
        def read(self, relative: str, **kwargs: object) -> bytes:
            if relative != "latest.json":
                barrier.wait()
            return super().read(relative)

    reader = Meeting()
    reader.publish("v1", _blob("v1"))
    # WHEN a function loads its parts THEN all of them were being read at once, and the model serves
    assert _store(reader, Clock(), parts=parts).get().version == "v1"
    assert not barrier.broken and len(reader.reads) == len(parts) + 1


def test_of_parts_read_at_once_the_error_of_the_first_failed_is_raised() -> None:
    # GIVEN three parts, where the third fails before the second does
    third_failed = threading.Event()

    def fetch(name: str) -> str:
        if name == "c":
            third_failed.set()
            raise ModelUnavailableError("c is unreachable")
        if name == "b":
            third_failed.wait(60)
            raise ModelIntegrityError("b is not what the pointer promised")
        return name

    # WHEN they are read at once THEN the error raised is the second's, as reading in order would give
    with pytest.raises(ModelIntegrityError, match="b is not"):
        at_once(fetch, ("a", "b", "c"))
    assert at_once(str.upper, ("a", "b")) == {"a": "A", "b": "B"}
