"""devstack.docker: one Docker daemon shared by every run on the machine."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest


def test_the_run_that_started_dockerd_leaves_it_to_a_run_still_using_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no daemon answering, so this run starts one (a stand-in), and the stops it makes recorded
    from devstack import docker

    started, stopped = object(), []
    monkeypatch.setattr(docker, "USERS_LOCK", tmp_path / "users")
    monkeypatch.setattr(docker, "_docker_answers", lambda: False)
    monkeypatch.setattr(docker, "_start_daemon", lambda: started)
    monkeypatch.setattr(docker, "stop", lambda proc, timeout: stopped.append(proc))
    # WHEN another run uses the daemon (holds the users' lock) while this one ends
    with open(tmp_path / "users", "a+b") as other:
        with docker.docker_daemon():
            fcntl.flock(other, fcntl.LOCK_SH)
        # THEN the daemon stays up for it
        assert stopped == []
        fcntl.flock(other, fcntl.LOCK_UN)
    # AND a run that is alone at its end stops what it started
    with docker.docker_daemon():
        pass
    assert stopped == [started]
