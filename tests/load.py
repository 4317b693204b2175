"""A bounded, paced load on a local API process, for the swap-under-load and soak tests."""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from devstack.servers import start_server
from tests.conftest import ROOT, free_port


@dataclass
class Record:
    sent: float  # seconds since the load started
    path: str
    status: int  # 0: no HTTP answer at all
    seconds: float
    body: Any = None
    error: str = ""


@contextmanager
def local_api(model_uri: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`scripts.localstack serve` in its own process; yields (base URL, process)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.localstack", "serve", "--model-uri", model_uri, "--api-port", str(port)],
        cwd=ROOT, env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING", **env},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("READY")
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def drive(base: str, target: Callable[[int], str], rate: float, seconds: float, workers: int = 4,
          keep_body: bool = True) -> list[Record]:  # fmt: skip
    """Send request i (path `target(i)`) at start + i / rate, for `seconds`; never more than `rate` per second."""
    total = int(rate * seconds)
    records: list[Record] = []
    lock = threading.Lock()
    start = time.monotonic()

    def work(first: int) -> None:
        for i in range(first, total, workers):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            path = target(i)
            sent = time.monotonic()
            record = Record(sent - start, path, 0, 0.0)
            try:
                with urllib.request.urlopen(base + path, timeout=10) as response:
                    record.status, raw = response.status, response.read()
            except urllib.error.HTTPError as exc:
                record.status, raw = exc.code, exc.read()
            except OSError as exc:
                raw, record.error = b"", repr(exc)
            record.seconds = time.monotonic() - sent
            if keep_body and raw:
                record.body = json.loads(raw)
            with lock:
                records.append(record)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(records, key=lambda r: r.sent)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class DynamoProxy:
    """A DynamoDB endpoint on loopback in front of moto's at `target`: it passes one request at a
    time, and fails a share of them before forwarding (`fail_before`) and after (`fail_after`).

    One at a time: moto serves each request in a thread of its own, and rolls a cancelled
    transaction back by putting back a copy of the whole table taken before it, which erases the
    writes other requests made meanwhile (moto/dynamodb/models/__init__.py, transact_write_items).
    DynamoDB isolates transactions (serializable); passing requests one at a time gives moto that
    isolation, while the clients still race for it.
    """

    def __init__(self, target: str, fail_before: float = 0.0, fail_after: float = 0.0, seed: int = 5) -> None:
        self.target = target.removeprefix("http://")
        self.fail_before, self.fail_after = fail_before, fail_after
        self.rng, self.lock, self.serial = random.Random(seed), threading.Lock(), threading.Lock()
        self.failed = {"before": 0, "after": 0, "passed": 0}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fate = proxy.fate()
                if fate != "before":
                    with proxy.serial:
                        conn = http.client.HTTPConnection(proxy.target, timeout=30)
                        conn.request("POST", self.path, body, {k: v for k, v in self.headers.items() if k != "Host"})
                        answer = conn.getresponse()
                        status, data = answer.status, answer.read()
                        conn.close()
                if fate == "passed":
                    self.reply(status, data)
                else:
                    self.reply(500, b'{"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", '
                                    b'"message": "injected"}')  # fmt: skip

            def reply(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = start_server(Handler, 0)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fate(self) -> str:
        with self.lock:
            draw = self.rng.random()
            fate = "passed"
            if draw < self.fail_before + self.fail_after:
                fate = "before" if draw < self.fail_before else "after"
            self.failed[fate] += 1
            return fate
