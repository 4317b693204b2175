"""Tracing of the handlers, without the X-Ray SDK.

With `Tracing: Active`, Lambda itself records each invocation's segments. What the functions add
are subsegments: the handler (``## lambda_handler``, with the ColdStart annotation, opened by
`recsys.telemetry.instrument`) and one per S3 request. The X-Ray SDK for Python reaches end of
support on 2027-02-25, and its import (with the ``http.client`` patch it needs, which brings
urllib3) was about 50 ms of every cold start, so `XRayDaemon` sends those subsegments itself: one
UDP datagram per subsegment to the daemon Lambda runs (``AWS_XRAY_DAEMON_ADDRESS``), in the
segment document format, under the trace and parent of the invocation's ``_X_AMZN_TRACE_ID``,
only when that header says Sampled=1.

On or off is powertools' rule (`tracing_disabled`): inside Lambda, not in SAM's emulator, unless
POWERTOOLS_TRACE_DISABLED. Off, nothing is recorded and nothing is sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

HEADER = b'{"format": "json", "version": 1}\n'
DEFAULT_DAEMON = "127.0.0.1:2000"


def tracing_disabled(env: Mapping[str, str] | None = None) -> bool:
    """Off outside Lambda, in SAM's emulator, or when POWERTOOLS_TRACE_DISABLED is true."""
    env = os.environ if env is None else env
    if env.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return True
    return "AWS_LAMBDA_FUNCTION_NAME" not in env or "AWS_SAM_LOCAL" in env


class Subsegment:
    """One subsegment being recorded: its document, sent when it closes."""

    def __init__(self, daemon: XRayDaemon, name: str, parent_id: str | None) -> None:
        self.daemon = daemon
        self.doc: dict[str, Any] = {"name": name, "id": os.urandom(8).hex(), "start_time": time.time(),
                                    "type": "subsegment", "parent_id": parent_id}  # fmt: skip

    def close(self, end_time: int | None = None) -> None:
        self.doc["end_time"] = time.time() if end_time is None else end_time
        self.daemon.send(self.doc)

    def put_annotation(self, key: str, value: Any) -> None:
        self.doc.setdefault("annotations", {})[key] = value

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.doc.setdefault("metadata", {}).setdefault(namespace, {})[key] = value

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        frames = traceback.extract_tb(exception.__traceback__)[-8:]
        self.doc["fault"] = True
        self.doc["cause"] = {"exceptions": [{
            "id": os.urandom(8).hex(), "type": type(exception).__name__, "message": str(exception)[:500],
            "remote": remote, "stack": [{"path": f.filename, "line": f.lineno, "label": f.name} for f in frames],
        }]}  # fmt: skip


class XRayDaemon:
    """Sends subsegments straight to the X-Ray daemon (UDP).

    `remote` records an S3 request after the fact (`recsys.s3.S3Client`'s ``observe``).
    """

    def __init__(self, address: str | None = None) -> None:
        host, _, port = (address or os.environ.get("AWS_XRAY_DAEMON_ADDRESS") or DEFAULT_DAEMON).partition(":")
        self.address = (host, int(port or 2000))
        self._socket: socket.socket | None = None
        # The subsegments open now, innermost last: one list for the process, as Lambda runs one
        # invocation at a time, so that a model load's reads on other threads (recsys.store) are
        # recorded under the handler's subsegment too.
        self._open: list[Subsegment] = []

    def _trace(self) -> tuple[str, str] | None:
        """(trace id, parent id) of the current invocation, or None when it is not sampled."""
        fields = dict(part.split("=", 1) for part in os.environ.get("_X_AMZN_TRACE_ID", "").split(";") if "=" in part)
        if fields.get("Sampled") != "1" or "Root" not in fields or "Parent" not in fields:
            return None
        return fields["Root"], fields["Parent"]

    def send(self, doc: dict[str, Any]) -> None:
        trace = self._trace()
        if trace is None:
            return
        doc = {**doc, "trace_id": trace[0], "parent_id": doc.get("parent_id") or trace[1]}
        if self._socket is None:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):  # tracing never fails a request
            self._socket.sendto(HEADER + json.dumps(doc, default=str).encode(), self.address)

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None) -> Iterator[Subsegment]:
        stack = self._open
        subsegment = Subsegment(self, name or "subsegment", stack[-1].doc["id"] if stack else None)
        stack.append(subsegment)
        try:
            yield subsegment
        except BaseException as exc:
            subsegment.add_exception(exc, None)
            raise
        finally:
            stack.pop()
            subsegment.close()

    def remote(self, method: str, url: str, status: int, start: float, end: float) -> None:
        """Record a finished request to another service (S3) under the open subsegment."""
        stack = self._open
        doc: dict[str, Any] = {
            "name": url.split("/")[2] if "://" in url else "remote", "id": os.urandom(8).hex(), "type": "subsegment",
            "namespace": "remote", "start_time": start, "end_time": end,
            "parent_id": stack[-1].doc["id"] if stack else None,
            "http": {"request": {"method": method, "url": url}, "response": {"status": status}},
        }  # fmt: skip
        if status == 0 or status >= 500:
            doc["fault"] = True
        elif status >= 400:
            doc["error"] = True
        self.send(doc)


class NoSegment:
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class Untraced:
    """Records nothing (tracing off)."""

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None) -> Iterator[NoSegment]:
        yield NoSegment()


#: What the handlers trace with: `XRayDaemon`, or `Untraced` when tracing is off.
Tracer = XRayDaemon | Untraced


def create_tracer() -> Tracer:
    """The X-Ray daemon's sender when tracing is on (`tracing_disabled`), else one that records nothing."""
    return Untraced() if tracing_disabled() else XRayDaemon()
