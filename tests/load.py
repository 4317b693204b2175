"""A bounded, paced load on a local API process, for the swap-under-load and soak tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
