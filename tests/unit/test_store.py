from __future__ import annotations

import hashlib
import os
import pickle
import pickletools
import subprocess
from pathlib import Path

import pytest

from recsys.errors import ModelIntegrityError
from recsys.store import ALLOWED_GLOBALS, load_artifact
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
