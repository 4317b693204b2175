"""The real SAM CLI against the local stack: `sam build`, and `sam local invoke` / `start-api`.

**The stack.** `SamStack` starts dockerd when none runs (and stops only the one it started), creates
its own Docker network, runs moto in a container on it (published on 127.0.0.1 for the host side),
creates the feedback table and publishes a model there, runs `sam build`, and gives `sam local
invoke` / `start-api` the network and an env file pointing the functions at ``http://moto:5000``.
Traffic stays on loopback and that network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devstack.docker import (
    MOTO_PORT,
    WORK,
    docker,
    docker_daemon,
    ensure_images,
    ensure_wheelhouse,
    image_names,
    runtime_version,
)
from devstack.dynamodb import EVENTS_TABLE, FEEDBACK_TABLE, create_events_table, create_feedback_table
from devstack.s3 import upload_store
from devstack.template import ROOT, TEMPLATE

SAM = ROOT / ".venv-sam" / "bin" / "sam"
BUCKET = "recommender-models"
PREFIX = "recommender"


def sam_env() -> dict[str, str]:
    """The environment of a sam command: fake credentials (moto's), no telemetry, python3.13 on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_REGION="us-east-1", SAM_CLI_TELEMETRY="0",
               PATH=f"{SAM.parent}:{os.environ.get('PATH', '')}")  # fmt: skip
    return env


def sam_build(log: Any = print, template: Path = TEMPLATE, out: Path = WORK / "build") -> Path:
    """`sam build` of `template` into `out` (cached: unchanged code is not rebuilt; an image function
    is built by Docker's legacy builder, whose layer cache does the same); the built template."""
    started = time.monotonic()
    subprocess.run([str(SAM), "build", "--template-file", str(template), "--build-dir", str(out), "--cache-dir",
                    str(WORK / "cache"), "--cached", "--region", "us-east-1"],
                   cwd=ROOT, env=sam_env(), check=True, capture_output=True, text=True, timeout=1200)  # fmt: skip
    log(f"sam build in {time.monotonic() - started:.0f} s")
    return out / "template.yaml"


def ship(folder: Path, into: Path) -> Path:
    """What Lambda runs of a built `folder`: zipped by SAM's own deploy code (every entry dated
    1980-01-01), then unpacked under `into` with the dates the zip holds, read-only."""
    zip_base = into.parent / f".{into.name}"
    code = ("import sys; from samcli.lib.package.utils import make_zip_with_lambda_permissions as z; "
            "print(z(sys.argv[1], sys.argv[2]))")  # fmt: skip
    into.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(SAM.parent / "python"), "-c", code, str(zip_base), str(folder)],
                          check=True, capture_output=True, text=True, timeout=300)  # fmt: skip
    archive = Path(done.stdout.strip())
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = into / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
                stamp = time.mktime((*info.date_time, 0, 0, -1))
                os.utime(target, (stamp, stamp))
                target.chmod(0o444)
    finally:
        archive.unlink()
    return into


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
            ensure_wheelhouse(log=self.log)  # TrainFunction's image installs from it
            self.template = sam_build(self.log)
            docker("network", "create", self.name)
            self._stack.callback(docker, "network", "rm", self.name, check=False)
            names = image_names(runtime_version())
            docker("run", "-d", "--rm", "--name", self.name, "--network", self.name, "--network-alias", "moto",
                   "-p", f"127.0.0.1::{MOTO_PORT}", names["moto"])  # fmt: skip
            self._stack.callback(docker, "rm", "-f", self.name, check=False)
            self.moto_port = int(docker("port", self.name, str(MOTO_PORT)).split(":")[-1])
            self._wait_for_moto()
            create_feedback_table(self.client("dynamodb"))
            create_events_table(self.client("dynamodb"))
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
        return self.client("s3")

    def client(self, service: str) -> Any:
        """A boto3 client of `service` on this stack's moto."""
        import boto3

        return boto3.client(service, endpoint_url=self.moto_endpoint, region_name="us-east-1",
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
                     "AWS_ENDPOINT_URL_DYNAMODB": f"http://moto:{MOTO_PORT}", "FEEDBACK_TABLE": FEEDBACK_TABLE,
                     "EVENTS_TABLE": EVENTS_TABLE,
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
