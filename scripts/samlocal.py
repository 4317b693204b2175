"""The real SAM CLI locally: an emulation image built without a registry, moto in a container, sam local.

    python -m scripts.samlocal image                          # make sam-image
    python -m scripts.samlocal invoke FN EVENT [--model-uri]  # make sam-invoke: prints the response
    python -m scripts.samlocal demo                           # make demo API=sam

**The emulation image.** `sam local` runs a function in the runtime's image with the Runtime
Interface Emulator, which SAM CLI ships and adds itself. The image only has to provide the runtime's
Python and `awslambdaric`. `ensure_images` first tries the official image; where no registry can be
reached it builds one: `debootstrap --variant=minbase` of the Debian release whose Python is the
runtime's (`SUITES`), imported into Docker with `awslambdaric` and `boto3` (downloaded on the
host: containers cannot reach the registries) and a `/var/runtime/bootstrap`. It is tagged with the
official name, so a plain `sam local invoke --skip-pull-image` uses it. Images carry a label of
their inputs (runtime, suite, pins), so a second run builds nothing, and a runtime change in
`template.yaml` builds anew. Fidelity: Debian's glibc and libraries, not Amazon Linux's.

**The stack.** `SamStack` starts dockerd when none runs (and stops only the one it started), creates
its own Docker network, runs moto in a container on it (published on 127.0.0.1 for the host side),
publishes a model there, runs `sam build`, and gives `sam local invoke` / `start-api` the network
and an env file pointing the functions at ``http://moto:5000``. Traffic stays on loopback and that
network.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scripts.localstack import (
    FRONTEND,
    ROOT,
    SITE_HEADERS,
    TEMPLATE,
    _http_handler,
    config_js,
    load_application,
    site_csp,
    start_server,
    stop,
    upload_store,
)  # fmt: skip

WORK = ROOT / "build" / "sam"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
SUITES = {"3.11": "bookworm", "3.13": "trixie"}  # Debian releases whose python3 is the runtime's
MIRROR = "http://deb.debian.org/debian"
GLIBC_PLATFORM = "manylinux_2_36_x86_64"  # bookworm's glibc; trixie's is newer, so both run these wheels
AWSLAMBDARIC = "awslambdaric==4.2.2"
LABEL = "recommender.sam-image"
IMAGE_FORMAT = 1  # bump when the way images are built changes
MOTO_PORT = 5000
BUCKET = "recommender-models"
PREFIX = "recommender"
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


@contextlib.contextmanager
def docker_daemon() -> Iterator[None]:
    """A running Docker daemon: the one that runs, or one started here and stopped on exit."""
    if _docker_answers():
        yield
        return
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
        yield
    finally:
        stop(proc, timeout=30)


# -- the images --------------------------------------------------------------------------------


def runtime_version(template: Path = TEMPLATE) -> str:
    """The Python version of the template's functions' runtime ("3.13" for python3.13)."""
    runtimes = {f.runtime for f in load_application(template).functions.values()}
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
        "boto3": pin(ROOT / "layers/recsys/requirements.txt", "boto3"),
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
                runtime / "var/runtime", [AWSLAMBDARIC, pin(ROOT / "layers/recsys/requirements.txt", "boto3")], version
            )
            (runtime / "var/runtime/bootstrap").write_text(BOOTSTRAP.format(version=version))
            (runtime / "var/runtime/bootstrap").chmod(0o755)
            (runtime / "var/task").mkdir(parents=True)
            _import(rootfs, runtime, ["var/runtime", "var/task"], names["lambda"], key, [
                "ENV LANG=C.UTF-8", "ENV TZ=:/etc/localtime", "ENV LAMBDA_TASK_ROOT=/var/task",
                "ENV LAMBDA_RUNTIME_DIR=/var/runtime", "WORKDIR /var/task", 'ENTRYPOINT ["/var/runtime/bootstrap"]',
            ])  # fmt: skip
        moto = Path(tmp, "moto")
        _pip_target(moto / "opt/moto", [pin(ROOT / "requirements-dev.txt", "moto")], version)
        _import(rootfs, moto, ["opt/moto"], names["moto"], key, [
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


# -- the stack ---------------------------------------------------------------------------------


def sam_env() -> dict[str, str]:
    """The environment of a sam command: fake credentials (moto's), no telemetry, python3.13 on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_REGION="us-east-1", SAM_CLI_TELEMETRY="0",
               PATH=f"{SAM.parent}:{os.environ.get('PATH', '')}")  # fmt: skip
    return env


def sam_build(log: Any = print) -> Path:
    """`sam build` of the template into build/sam/build (cached: unchanged code is not rebuilt)."""
    out = WORK / "build"
    started = time.monotonic()
    subprocess.run([str(SAM), "build", "--template-file", str(TEMPLATE), "--build-dir", str(out), "--cache-dir",
                    str(WORK / "cache"), "--cached", "--region", "us-east-1"],
                   cwd=ROOT, env=sam_env(), check=True, capture_output=True, text=True, timeout=1200)  # fmt: skip
    log(f"sam build in {time.monotonic() - started:.0f} s")
    return out / "template.yaml"


class SamStack:
    """Docker, the images, a network of our own, moto on it, and a built template; `invoke` and `start_api`.

    Parameters
    ----------
    model_store : Path, optional
        A local model store (a folder with latest.json) to publish into moto's bucket.
    log : callable
    """

    def __init__(self, model_store: Path | None = None, log: Any = print) -> None:
        self.model_store = model_store
        self.log = log
        self.name = f"recsys-sam-{uuid.uuid4().hex[:8]}"
        self._stack = contextlib.ExitStack()
        self.moto_port = 0
        self.template = WORK / "build" / "template.yaml"

    @property
    def moto_endpoint(self) -> str:
        """moto, as the host reaches it (loopback)."""
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def model_uri(self) -> str:
        return f"s3://{BUCKET}/{PREFIX}"

    def __enter__(self) -> SamStack:
        try:
            self._stack.enter_context(docker_daemon())
            ensure_images(log=self.log)
            self.template = sam_build(self.log)
            docker("network", "create", self.name)
            self._stack.callback(docker, "network", "rm", self.name, check=False)
            names = image_names(runtime_version())
            docker("run", "-d", "--rm", "--name", self.name, "--network", self.name, "--network-alias", "moto",
                   "-p", f"127.0.0.1::{MOTO_PORT}", names["moto"])  # fmt: skip
            self._stack.callback(docker, "rm", "-f", self.name, check=False)
            self.moto_port = int(docker("port", self.name, str(MOTO_PORT)).split(":")[-1])
            self._wait_for_moto()
            if self.model_store is not None:
                self.publish(self.model_store)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _wait_for_moto(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.moto_endpoint}/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise RuntimeError("moto's container did not answer within 60 s")

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.moto_endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip

    def publish(self, store: Path) -> None:
        """Copy a local model store (its pointer last) into moto's bucket under the prefix."""
        s3 = self.s3()
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=BUCKET)
        upload_store(s3, BUCKET, PREFIX, store)

    def env_file(self, **overrides: str) -> Path:
        """The --env-vars file: every function reads the model from moto on this stack's network."""
        variables = {"MODEL_URI": self.model_uri, "AWS_ENDPOINT_URL_S3": f"http://moto:{MOTO_PORT}",
                     "ALLOWED_ORIGIN": "*", **overrides}  # fmt: skip
        path = WORK / f"env-{self.name}-{hashlib.sha256(json.dumps(variables).encode()).hexdigest()[:8]}.json"
        path.write_text(json.dumps({"Parameters": variables}, indent=2))
        self._stack.callback(path.unlink, missing_ok=True)
        return path

    def _common(self, env_file: Path) -> list[str]:
        return ["--template-file", str(self.template), "--env-vars", str(env_file), "--docker-network", self.name,
                "--skip-pull-image", "--region", "us-east-1",
                "--layer-cache-basedir", str(WORK / "layers")]  # fmt: skip

    def invoke(self, function: str, event: Path, **env: str) -> tuple[int, dict[str, Any] | None, str]:
        """`sam local invoke`: (sam's exit code, the function's response or None, sam's log)."""
        cmd = [str(SAM), "local", "invoke", function, "--event", str(event), *self._common(self.env_file(**env))]
        done = subprocess.run(cmd, cwd=ROOT, env=sam_env(), capture_output=True, text=True, timeout=600)
        response = None
        for line in reversed(done.stdout.strip().splitlines()):
            with contextlib.suppress(ValueError):
                response = json.loads(line)
                break
        return done.returncode, response, done.stderr

    @contextlib.contextmanager
    def start_api(self, port: int, **env: str) -> Iterator[str]:
        """`sam local start-api --warm-containers EAGER` on 127.0.0.1:`port`, ready when it answers."""
        cmd = [str(SAM), "local", "start-api", "--host", "127.0.0.1", "--port", str(port), "--warm-containers",
               "EAGER", *self._common(self.env_file(**env))]  # fmt: skip
        log = open(WORK / f"start-api-{port}.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=sam_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"sam local start-api exited {proc.returncode}: see {log.name}")
                try:
                    with urllib.request.urlopen(f"{url}/model", timeout=30):
                        break
                except urllib.error.HTTPError:
                    break  # it answers (a 503 is an answer)
                except (urllib.error.URLError, OSError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"sam local start-api not ready in 180 s: see {log.name}") from None
                    time.sleep(1)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
            _remove_containers_of(self.name)


def _remove_containers_of(network: str) -> None:
    """Warm containers that start-api left on our network (SAM stops them on a clean exit)."""
    ids = docker("ps", "-aq", "--filter", f"network={network}", check=False).split()
    moto = docker("ps", "-aq", "--filter", f"name=^{network}$", check=False).split()
    leftovers = [i for i in ids if i not in moto]
    if leftovers:
        docker("rm", "-f", *leftovers, check=False)


# -- commands ----------------------------------------------------------------------------------


def invoke(function: str, event: Path, model_uri: str) -> int:
    store = Path(model_uri)
    if not (store / "latest.json").is_file():
        print(f"error: no model at {store} (no latest.json); `make train` publishes one there", file=sys.stderr)
        return 2
    with SamStack(store, log=lambda m: print(m, file=sys.stderr)) as stack:
        code, response, log = stack.invoke(function, event)
    if response is None:
        print(log[-3000:], file=sys.stderr)
        return code or 1
    print(json.dumps(response, indent=2))
    failed = code != 0 or "errorMessage" in response or int(response.get("statusCode", 500)) >= 500
    return 1 if failed else 0


def demo(ratings: str, api_port: int, web_port: int) -> int:
    """Train into moto's container, serve the API with `sam local start-api` and the website."""
    from training.cli import main as train

    started = time.perf_counter()
    with SamStack(log=lambda m: print(m, flush=True)) as stack:
        os.environ.update(AWS_ENDPOINT_URL=stack.moto_endpoint, AWS_ACCESS_KEY_ID="testing",
                          AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
        stack.s3().create_bucket(Bucket=BUCKET)
        code = train(["--ratings", ratings, "--model-uri", stack.model_uri, "--cache-dir", str(ROOT / "build/cache")])
        if code != 0:
            return code
        with stack.start_api(api_port) as api:
            script = config_js(api)
            (FRONTEND / "config.js").write_bytes(script)
            headers = {**SITE_HEADERS, "Content-Security-Policy": site_csp(api)}
            site = start_server(_http_handler(None, FRONTEND, script, headers), web_port)
            web = f"http://127.0.0.1:{site.server_port}"
            print(f"\nAPI      {api}   (sam local start-api; try {api}/recommendations/196?explain=true)")
            print(f"Website  {web}/index.html   similar: {web}/similar.html   model: {web}/model.html")
            print(
                f"READY api={api} web={web} ({time.perf_counter() - started:.1f} s)  Ctrl-C stops everything",
                flush=True,
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("\nstopping")
            site.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.samlocal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("image", help="build (or reuse) the emulation and moto images for the template's runtime")
    inv = sub.add_parser("invoke", help="sam local invoke FN with EVENT against the last `make train` model")
    inv.add_argument("function")
    inv.add_argument("event", type=Path)
    inv.add_argument("--model-uri", default=str(ROOT / "build/model-store"))
    dem = sub.add_parser("demo", help="moto in a container, train and publish, sam local start-api, website")
    dem.add_argument("--ratings", default=os.environ.get("RATINGS") or "data/ml-100k")
    dem.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT") or 3000))
    dem.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT") or 8080))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.command == "image":
            with docker_daemon():
                ensure_images()
            return 0
        if args.command == "invoke":
            return invoke(args.function, args.event, args.model_uri)
        return demo(args.ratings, args.api_port, args.web_port)
    except DockerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


__all__ = ["DockerUnavailable", "SamStack", "docker_daemon", "ensure_images", "pin"]

if __name__ == "__main__":
    raise SystemExit(main())
