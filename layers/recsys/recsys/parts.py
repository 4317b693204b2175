"""The model's format on disk: which parts, what each holds, how a part is pickled, and the pointer.

Training writes through this module and serving reads through it, so the format is defined once::

    latest.json                     the pointer (`Pointer`): {version, parts: {name: {key, sha256, size}},
                                    created_at}, written last
    models/<version>/<part>.pkl     one framed pickle per part (`dump_part`) of the envelope
                                    {"part": name, "version": version, "fields": {field: value}}

A part's file is a frame (`frame`): a header, the pickle (protocol 5), then the bytes of each of its
arrays, 64-byte aligned, outside the pickle (out-of-band buffers). Loading hands those bytes to the
unpickler as they lie in the file that was read, so an array is a read-only view of the downloaded
bytes: nothing is copied, and a part costs its size in memory once. Everything the header says is
checked before anything is unpickled.

A part holds numpy arrays, str tuples, ints and a provenance dict, nothing else: its unpickler
(`RestrictedUnpickler`) resolves numpy's array reconstruction only (`ARRAY_GLOBALS`), so no class
of this package, nor any other callable, can be named in a model file. The single-file layout of
earlier releases (one pickled ModelArtifact) named the class and is not read any more: a store
published by such a release is refused with a message that says to republish.

Every value of a pointer is checked here before anything is read on its word (types, digest
form, sizes within `MAX_PART_BYTES`, keys inside the store); anything else is a
`ModelIntegrityError`, whatever Python raised underneath (a size of ``1e400``, a nesting too deep
for the parser, a number of 5,000 digits).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import struct
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from recsys.errors import ModelIntegrityError, ModelUnavailableError

POINTER = "latest.json"
MODELS = "models"
SCHEMA_VERSION = 7  # 2: neighbour lists; 3: seen sets, liked neighbours, fold-in map; 4: framed parts, item-item;
# 5: item-item weights as int16 scaled per movie; 6: recency weights of a user's newest likes;
# 7: the refold weight of a known user's new likes

#: What a part's pickle may name: numpy's array reconstruction, nothing else.
ARRAY_GLOBALS = frozenset({
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
})  # fmt: skip

#: The largest pointer read (a real one is under 2 KB).
MAX_POINTER_BYTES = 64 * 1024
#: The largest part a pointer may name: the ML-10M shape's largest is 21 MB, a function has 1 GB.
MAX_PART_BYTES = 256 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def model_key(version: str, name: str) -> str:
    """The key, relative to the store, of one file of a published version."""
    return f"{MODELS}/{version}/{name}"


# -- the pointer ------------------------------------------------------------------------------


class PartEntry(NamedTuple):
    """Where one part of a version lies, and what its bytes must be."""

    key: str
    sha256: str
    size: int


class Pointer(NamedTuple):
    """What ``latest.json`` says: the serving version, and each of its parts."""

    version: str
    parts: Mapping[str, PartEntry]
    created_at: str = ""

    @classmethod
    def for_parts(cls, version: str, parts: Mapping[str, bytes], created_at: str) -> Pointer:
        """The pointer that names `parts` (name -> the bytes `dump_part` made) of `version`."""
        entries = {
            name: PartEntry(model_key(version, f"{name}.pkl"), hashlib.sha256(data).hexdigest(), len(data))
            for name, data in parts.items()
        }
        return cls(version, entries, created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "parts": {name: entry._asdict() for name, entry in self.parts.items()},
            "created_at": self.created_at,
        }

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=2).encode()

    @classmethod
    def parse(cls, raw: bytes | bytearray) -> Pointer:
        """The pointer in `raw`, every value checked; ModelIntegrityError for anything else."""
        if len(raw) > MAX_POINTER_BYTES:
            raise ModelIntegrityError(f"{POINTER} is {len(raw)} bytes, over {MAX_POINTER_BYTES}")
        try:
            doc = json.loads(raw, parse_constant=_no_constant)
        except MemoryError:
            raise
        except Exception as exc:  # JSONDecodeError, int-size ValueError, RecursionError, UnicodeDecodeError
            raise ModelIntegrityError(f"{POINTER} is not JSON: {type(exc).__name__}") from None
        if not isinstance(doc, dict):
            raise ModelIntegrityError(f"{POINTER} is not a JSON object")
        if "parts" not in doc and {"key", "sha256"} <= set(doc):
            raise ModelIntegrityError(
                f"{POINTER} is of the single-file layout of an earlier release, which is no longer read: "
                "republish the model with this release's training (make publish-model)"
            )
        version, parts, created = doc.get("version"), doc.get("parts"), doc.get("created_at", "")
        if not isinstance(version, str) or not _VERSION.match(version):
            raise ModelIntegrityError(f"{POINTER} has no valid version")
        if not isinstance(parts, dict) or not parts:
            raise ModelIntegrityError(f"{POINTER} of {version} names no part catalog")
        entries = {}
        for name, entry in parts.items():
            if name not in PARTS:
                raise ModelIntegrityError(f"{POINTER} of {version} names an unknown part {name[:40]!r}")
            entries[name] = _entry(name, entry)
        return cls(version, entries, created if isinstance(created, str) else "")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _entry(name: str, raw: Any) -> PartEntry:
    if not isinstance(raw, dict):
        raise ModelIntegrityError(f"{POINTER}: part {name} is not an object")
    key, digest, size = raw.get("key"), raw.get("sha256"), raw.get("size")
    if not isinstance(key, str) or not 0 < len(key) <= 1024 or key.startswith("/") or ".." in key.split("/"):
        raise ModelIntegrityError(f"{POINTER}: part {name} names a key outside the store")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise ModelIntegrityError(f"{POINTER}: part {name} has no valid sha256")
    if type(size) is not int or not 0 < size <= MAX_PART_BYTES:
        raise ModelIntegrityError(f"{POINTER}: part {name} has no valid size (1..{MAX_PART_BYTES} bytes)")
    return PartEntry(key, digest, size)


# -- one part ---------------------------------------------------------------------------------


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy's array reconstruction (`ARRAY_GLOBALS`).

    A pickle can also set attributes on what it names (BUILD), which would change that object for
    the whole process. numpy's types and C functions refuse new attributes; a Python function among
    the allowed ones is handed out as a fresh wrapper per load, so whatever a pickle sets on it
    dies with the load.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ARRAY_GLOBALS:
            raise ModelIntegrityError(f"model pickle refers to {module}.{name}, which is not allowed")
        found = super().find_class(module, name)
        if isinstance(found, types.FunctionType):
            return lambda *args: found(*args)
        return found


#: A frame: magic, pickle length, buffer count; then (offset, length) of each buffer.
_HEADER = struct.Struct("<8sQQ")
_SPAN = struct.Struct("<QQ")
MAGIC = b"RSYSPRT1"
#: The most buffers (arrays) one part may hold; a real part has at most nine.
MAX_BUFFERS = 64
_ALIGN = 64


def dump_part(name: str, version: str, fields: Mapping[str, Any]) -> bytes:
    """Part `name` of model `version`: its envelope pickled and framed (see `load_part`)."""
    buffers: list[pickle.PickleBuffer] = []
    envelope = {"part": name, "version": version, "fields": dict(fields)}
    data = pickle.dumps(envelope, protocol=5, buffer_callback=buffers.append)
    return frame(data, [buffer.raw() for buffer in buffers])


def frame(data: bytes, buffers: list[memoryview]) -> bytes:
    """A pickle `data` and its out-of-band `buffers` in the layout `unframe` reads."""
    offset = _HEADER.size + _SPAN.size * len(buffers) + len(data)
    spans = []
    for buffer in buffers:
        offset = -(-offset // _ALIGN) * _ALIGN
        spans.append((offset, buffer.nbytes))
        offset += buffer.nbytes
    out = bytearray(_HEADER.pack(MAGIC, len(data), len(buffers)))
    for span in spans:
        out += _SPAN.pack(*span)
    out += data
    for (start, _), buffer in zip(spans, buffers, strict=True):
        out += bytes(start - len(out))
        out += buffer
    return bytes(out)


def unframe(data: memoryview) -> tuple[memoryview, list[memoryview]]:
    """The pickle and the buffers of a frame, as views of `data`; ModelIntegrityError unless every
    span lies inside it, after the pickle, in order and without overlap."""
    if data.nbytes < _HEADER.size:
        raise ModelIntegrityError("not a framed part: too short")
    magic, length, count = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ModelIntegrityError(
            "not a framed part: published by an earlier release? Republish the model with this release's training"
        )
    start = _HEADER.size + _SPAN.size * count
    if count > MAX_BUFFERS or start + length > data.nbytes:
        raise ModelIntegrityError("framed part: header out of range")
    buffers, end = [], start + length
    for i in range(count):
        offset, size = _SPAN.unpack_from(data, _HEADER.size + _SPAN.size * i)
        if offset < end or offset + size > data.nbytes:
            raise ModelIntegrityError(f"framed part: buffer {i} out of range")
        buffers.append(data[offset : offset + size])
        end = offset + size
    return data[start : start + length], buffers


def load_part(data: bytes | bytearray, *, name: str, version: str, sha256: str, size: int) -> dict[str, Any]:
    """Verify one part's bytes against the pointer, unpickle them safely: the part's fields.

    The arrays are read-only views of `data` (see `frame`), which they keep alive.

    The part must say it is part `name` of model `version`, so that parts of two versions never
    mix. Raises ModelIntegrityError when it does not, and ModelUnavailableError (not remembered as
    a bad model) when memory ran out. Its fields are checked with the other parts' (`check_parts`).
    """
    if len(data) != size:
        raise ModelIntegrityError(f"part {name} is {len(data)} bytes, the pointer says {size}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelIntegrityError(f"part {name} sha256 is {digest}, the pointer says {sha256}")
    try:
        pickled, buffers = unframe(memoryview(data).toreadonly())
        obj = RestrictedUnpickler(io.BytesIO(pickled), buffers=buffers).load()
    except ModelIntegrityError:
        raise
    except MemoryError as exc:
        raise ModelUnavailableError(f"part {name}: out of memory while unpickling") from exc
    except Exception as exc:  # any malformed pickle: report it, never let it crash the function
        raise ModelIntegrityError(f"part {name} pickle does not load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict) or set(obj) != {"part", "version", "fields"}:
        raise ModelIntegrityError(f"part {name} is not a model part")
    if obj["part"] != name or obj["version"] != version:
        raise ModelIntegrityError(f"part {name} of {version} holds part {obj['part']!r} of {obj['version']!r}")
    fields = obj["fields"]
    if not isinstance(fields, dict):
        raise ModelIntegrityError(f"part {name} holds no fields")
    return fields  # which fields, and what they hold: `check_parts`


# -- what each part holds -------------------------------------------------------------------

#: The most neighbours an item keeps (the API's largest k).
MAX_NEIGHBOURS = 100
#: A user's item-item scores come from their newest likes, at most this many: the sum's cost grows
#: with the likes, and training evaluates the same cap (`training.itemitem.recent_likes`). Each
#: model carries its own, as the length of its recency weights (models published before this
#: one read 256). At 128, on ML-100K, validation ndcg@10 was 0.21425 against 0.21418 at 256 and the
#: test split's the same; at the ML-10M shape a heavy user's item-item sum takes half the time.
ITEM_ITEM_LIKES = 128
#: The largest cap a model may carry.
MAX_ITEM_ITEM_LIKES = 1024


class Spec(NamedTuple):
    """One field: its Python type and, for arrays, the dtypes it may have and its shape in named
    dimensions ("items", "users", "d", "likes", "unliked", "neighbours", "weights",
    "shares"; "+1" adds one)."""

    kind: type = np.ndarray
    dtypes: tuple[str, ...] = ()
    shape: tuple[str, ...] = ()


_INDEX = ("uint16", "int16", "int32", "int64")  # item indices: the smallest that fits, by training

#: Every field of every part (`PARTS` lists the same names).
SPECS: dict[str, dict[str, Spec]] = {
    "catalog": {
        "item_ids": Spec(dtypes=("int32", "int64"), shape=("items",)),
        "popularity": Spec(dtypes=("int32",), shape=("items",)),
        "like_counts": Spec(dtypes=("int32",), shape=("items",)),
        "titles": Spec(tuple),
        "years": Spec(dtypes=("int16",), shape=("items",)),
        "genre_names": Spec(tuple),
        "item_genres": Spec(dtypes=("uint32",), shape=("items",)),
        "provenance": Spec(dict),
        "schema": Spec(int),
    },
    "item_vectors": {
        "item_factors": Spec(dtypes=("float32",), shape=("items", "d")),
        "item_biases": Spec(dtypes=("float32",), shape=("items",)),
        "fold_in_map": Spec(dtypes=("float32",), shape=("d+1", "d")),
        "refold_weight": Spec(float),
    },
    "item_item": {
        "item_item_indptr": Spec(dtypes=("int64",), shape=("items+1",)),
        "item_item_targets": Spec(dtypes=_INDEX, shape=("weights",)),
        "item_item_weights": Spec(dtypes=("int16",), shape=("weights",)),
        "item_item_scales": Spec(dtypes=("float32",), shape=("items",)),
        "item_item_recency": Spec(dtypes=("float32",), shape=("recent",)),
        "blend_shares": Spec(dtypes=("float32",), shape=("shares",)),
        "visitor_shares": Spec(dtypes=("float32",), shape=("shares",)),
    },
    "neighbours": {
        "neighbours": Spec(dtypes=("uint16", "int32"), shape=("items", "neighbours")),
        "neighbour_sims": Spec(dtypes=("float32",), shape=("items", "neighbours")),
    },
    "user_vectors": {
        "user_factors": Spec(dtypes=("float32",), shape=("users", "d")),
        "user_biases": Spec(dtypes=("float32",), shape=("users",)),
    },
    "histories": {
        "user_ids": Spec(dtypes=("int32", "int64"), shape=("users",)),
        "history_indptr": Spec(dtypes=("int64",), shape=("users+1",)),
        "history_items": Spec(dtypes=_INDEX, shape=("likes",)),
        "unliked_indptr": Spec(dtypes=("int64",), shape=("users+1",)),
        "unliked_items": Spec(dtypes=_INDEX, shape=("unliked",)),
    },
    "ratings": {
        "history_ratings": Spec(dtypes=("uint8",), shape=("likes",)),
        "history_days": Spec(dtypes=("uint16",), shape=("likes",)),
    },
}
#: The ids first, so that sizes are measured against them.
CHECK_ORDER = ("catalog", "histories", "ratings", "item_vectors", "item_item", "neighbours", "user_vectors")
#: The parts a model is published in, and the fields of each. Every function loads "catalog".
PARTS: dict[str, tuple[str, ...]] = {name: tuple(fields) for name, fields in SPECS.items()}
_FINITE = ("item_factors", "item_biases", "fold_in_map", "user_factors", "user_biases", "item_item_scales",
           "blend_shares", "visitor_shares", "item_item_recency")  # fmt: skip


def check_parts(parts: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ValueError naming the first field of `parts` (name -> fields) whose type, dtype, shape
    or values are wrong, or that disagrees with another part.

    Parts are checked one by one in `CHECK_ORDER`, each against its `SPECS` and against the
    dimensions the parts before it fixed: the ids come first (the catalog's fix "items", the
    histories' "users"), so it is the part that disagrees with them that is named. A part that was
    not loaded is simply not checked.
    """
    if "catalog" not in parts:
        raise ValueError("no catalog part: every model needs it")
    if "ratings" in parts and "histories" not in parts:
        raise ValueError("the ratings part needs the histories part")
    dims: dict[str, int] = {"shares": 2}  # the blend's two models
    for name in sorted(parts, key=lambda n: CHECK_ORDER.index(n) if n in CHECK_ORDER else -1):
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}")
        fields = parts[name]
        if not isinstance(fields, Mapping) or set(fields) != set(PARTS[name]):
            got = sorted(map(str, fields)) if isinstance(fields, Mapping) else type(fields).__name__
            raise ValueError(f"part {name}: expected fields {sorted(PARTS[name])}, got {got}")
        for field, spec in SPECS[name].items():
            _check_field(field, fields[field], spec, dims)
            if field == "item_ids":
                dims["neighbours"] = min(MAX_NEIGHBOURS, dims["items"] - 1)
        _check_values(name, fields, dims)


def _check_field(name: str, value: Any, spec: Spec, dims: dict[str, int]) -> None:
    if not isinstance(value, spec.kind) or isinstance(value, bool):
        raise ValueError(f"{name}: expected {spec.kind.__name__}, got {type(value).__name__}")
    if isinstance(value, tuple) and not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}: expected a tuple of str")
    if not isinstance(value, np.ndarray):
        return
    if value.dtype.name not in spec.dtypes:
        raise ValueError(f"{name}: expected dtype {' or '.join(spec.dtypes)}, got {value.dtype}")
    if value.ndim != len(spec.shape):
        raise ValueError(f"{name}: expected {len(spec.shape)} dimensions, got shape {value.shape}")
    for size, dim in zip(value.shape, spec.shape, strict=True):
        base, plus = dim.removesuffix("+1"), int(dim.endswith("+1"))
        if dims.setdefault(base, size - plus) + plus != size:
            raise ValueError(f"{name}: expected {dim} = {dims[base] + plus} along an axis, got shape {value.shape}")


def _check_values(part: str, fields: Mapping[str, Any], dims: dict[str, int]) -> None:
    """What dtype and shape cannot say: finite numbers, ascending ids, indices in range, offsets."""
    items = dims["items"]
    for name in _FINITE:
        if name in fields and not np.isfinite(fields[name]).all():
            raise ValueError(f"{name}: not every value is finite")
    for name in ("item_ids", "user_ids"):
        ids = fields.get(name)
        if ids is not None and ids.size > 1 and np.any(np.diff(ids) <= 0):
            raise ValueError(f"{name}: expected strictly ascending integers")
    for name in ("history_items", "unliked_items", "neighbours", "item_item_targets"):
        arr = fields.get(name)
        if arr is not None and arr.size and (arr.min() < 0 or arr.max() >= items):
            raise ValueError(f"{name}: index out of range")
    for indptr, rows in (("history_indptr", "history_items"), ("unliked_indptr", "unliked_items"),
                         ("item_item_indptr", "item_item_targets")):  # fmt: skip
        offsets = fields.get(indptr)
        if offsets is not None and (
            offsets[0] != 0 or offsets[-1] != fields[rows].shape[0] or np.any(np.diff(offsets) < 0)
        ):
            raise ValueError(f"{indptr} does not span {rows}")
    if part == "catalog":
        if fields["schema"] != SCHEMA_VERSION:
            raise ValueError(f"artifact schema {fields['schema']}, this code reads {SCHEMA_VERSION}")
        if len(fields["titles"]) != items:
            raise ValueError(f"titles: expected {items}, got {len(fields['titles'])}")
        # popularity ranks every item once: a repeated or out-of-range index would fail requests later
        if not np.array_equal(np.sort(fields["popularity"]), np.arange(items)):
            raise ValueError("popularity: expected every item index exactly once")
        if fields["like_counts"].size and fields["like_counts"].min() < 0:
            raise ValueError("like_counts: negative")
    if part == "item_item":
        for name in ("blend_shares", "visitor_shares"):
            if fields[name].min() < 0 or fields[name].sum() <= 0:
                raise ValueError(f"{name}: expected non-negative shares, not all zero")
        if fields["item_item_scales"].size and fields["item_item_scales"].min() < 0:
            raise ValueError("item_item_scales: negative")
        recency = fields["item_item_recency"]
        if not 1 <= recency.size <= MAX_ITEM_ITEM_LIKES:
            raise ValueError(f"item_item_recency: expected 1 to {MAX_ITEM_ITEM_LIKES} weights, got {recency.size}")
        if recency.min() < 0 or recency.max() > 1 or np.any(np.diff(recency) > 0):
            raise ValueError("item_item_recency: expected weights in [0, 1], never rising with a like's age")
    if part == "item_vectors" and not 0.0 <= fields["refold_weight"] <= 1.0:  # and not NaN
        raise ValueError(f"refold_weight: expected a weight in [0, 1], got {fields['refold_weight']}")
    if part == "neighbours":
        sims = fields["neighbour_sims"]
        if np.isnan(sims).any() or np.isposinf(sims).any():
            raise ValueError("neighbour_sims: NaN or +inf (only -inf pads a short row)")
