"""SnapStart hooks, called as Lambda's runtime calls them: before the snapshot, after a restore."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from functions.similar.app import MODEL_PARTS as SIMILAR_PARTS
from recsys.runtime import Runtime, register_snapstart
from tests.unit.test_artifact import tiny

pytestmark = pytest.mark.unit


def _publish(store: Path, version: str) -> None:
    entries = {}
    for name, blob in tiny(provenance={"version": version}).to_parts().items():
        key = f"models/{version}/{name}.pkl"
        (store / key).parent.mkdir(parents=True, exist_ok=True)
        (store / key).write_bytes(blob)
        entries[name] = {"key": key, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    (store / "latest.json").write_text(json.dumps({"version": version, "parts": entries}))


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Callable[[], None]]]:
    """Lambda's `snapshot_restore_py`, which exists only in its runtime: it keeps the hooks it is given."""
    registered: dict[str, list[Callable[[], None]]] = {"before": [], "after": []}
    module = types.ModuleType("snapshot_restore_py")
    module.register_before_snapshot = registered["before"].append  # type: ignore[attr-defined]
    module.register_after_restore = registered["after"].append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)
    return registered


def _runtime(store: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("MODEL_URI", str(store))
    monkeypatch.setenv("MODEL_REFRESH_SECONDS", "3600")
    return Runtime(parts=SIMILAR_PARTS)


def test_without_the_runtime_module_nothing_is_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import raises ImportError
    runtime = _runtime(tmp_path, monkeypatch)
    register_snapstart(runtime)  # no error, and no model loaded during init
    assert runtime._store is None


def test_the_snapshot_holds_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hooks: dict) -> None:
    # GIVEN a published model and a function whose hooks are registered
    _publish(tmp_path, "v1")
    runtime = _runtime(tmp_path, monkeypatch)
    register_snapstart(runtime)
    assert len(hooks["before"]) == 1 and len(hooks["after"]) == 1
    # WHEN Lambda calls the before-snapshot hook THEN the model is loaded during init
    hooks["before"][0]()
    assert runtime.store.bytes_read > 0
    read = runtime.store.bytes_read
    # THEN the first request after a restore serves it without downloading it again
    hooks["after"][0]()
    assert runtime.model().version == "v1"
    assert runtime.store.bytes_read == read


def test_after_a_restore_the_first_request_rechecks_the_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hooks: dict
) -> None:
    # GIVEN a snapshot taken with v1, and v2 published since (refresh is an hour away)
    _publish(tmp_path, "v1")
    runtime = _runtime(tmp_path, monkeypatch)
    register_snapstart(runtime)
    hooks["before"][0]()
    _publish(tmp_path, "v2")
    assert runtime.model().version == "v1"  # without a restore, the refresh interval holds
    # WHEN the snapshot is restored THEN the first request serves v2
    hooks["after"][0]()
    assert runtime.model().version == "v2"


def test_a_failure_before_the_snapshot_becomes_a_lazy_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hooks: dict, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN no model published yet when the snapshot is taken
    runtime = _runtime(tmp_path, monkeypatch)
    register_snapstart(runtime)
    hooks["before"][0]()  # WHEN the hook runs THEN it does not raise: the init goes on
    assert "no model before the snapshot" in caplog.text
    # WHEN a model is published and the snapshot restored THEN the first request loads it, at once
    # (the failed load's back-off does not outlive the snapshot)
    _publish(tmp_path, "v1")
    hooks["after"][0]()
    assert runtime.model().version == "v1"


def test_a_bad_setting_before_the_snapshot_does_not_crash_the_init(
    monkeypatch: pytest.MonkeyPatch, hooks: dict
) -> None:
    monkeypatch.delenv("MODEL_URI", raising=False)
    runtime = Runtime(parts=SIMILAR_PARTS)
    register_snapstart(runtime)
    hooks["before"][0]()
    hooks["after"][0]()


def test_each_function_registers_its_hooks() -> None:
    # in a fresh interpreter, as Lambda's init: each handler module registers its runtime's two hooks
    script = (
        "import sys, types\n"
        "hooks = []\n"
        "m = types.ModuleType('snapshot_restore_py')\n"
        "m.register_before_snapshot = m.register_after_restore = hooks.append\n"
        "sys.modules['snapshot_restore_py'] = m\n"
        "import functions.recommend.app as r, functions.history.app as h, functions.similar.app as s\n"
        "ok = all(a.runtime.before_snapshot in hooks and a.runtime.after_restore in hooks for a in (r, h, s))\n"
        "print(ok, len(hooks))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{root}:{root / 'layers/recsys'}",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "6"]
