"""CloudWatch metrics and the handler's trace subsegment, with the standard library only.

What powertools' Metrics and Tracer decorators gave the handlers, in the same shapes, without
their imports (powertools was about 17 ms of every cold start here, a fifth of ``import numpy``;
README, "Cold start"):

- `Metrics`: metrics in the CloudWatch embedded metric format (EMF), printed once at the end of
  an invocation that has any, and a ColdStart count on a cold start; and each request's own line
  (`add_request`) under the dimensions ``service`` and ``route``: ``Requests``, ``ClientErrors``
  (4xx), ``ServerErrors`` (5xx) and ``ColdStarts``, each 0 or 1, and ``Fallbacks`` under
  ``service``, ``route`` and ``reason`` when the answer fell back (`recsys.api.fallback_of`);
  and counts under more dimensions (`add_count`), such as FeedbackFunction's ``Impressions`` and
  ``AttributedLikes`` under ``service`` and ``list``.
- `instrument`: the entry point's decorator that ties them and the tracer (`recsys.tracing`) to
  each invocation.

Logs are Lambda's own: the template asks for JSON (``LoggingConfig``), and Lambda's handler on the
root logger writes each record of ``logging.getLogger(__name__)`` with the request id.

They read powertools' environment variables, so a template or a habit written for powertools
keeps working: ``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``,
``POWERTOOLS_METRICS_DISABLED`` and (`recsys.tracing`) ``POWERTOOLS_TRACE_DISABLED``.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from recsys.tracing import Tracer

H = TypeVar("H", bound=Callable[..., Any])


def instrument(tracer: Tracer, metrics: Metrics) -> Callable[[H], H]:
    """Decorate a Lambda entry point: it runs in the ``## <name>`` subsegment (annotated ColdStart
    and Service), a cold start counts one ColdStart, and the invocation's metrics are flushed when
    it returns or raises."""

    def decorate(handler: H) -> H:
        invocations = itertools.count()  # a Lambda process has one entry point: its first call is the cold start

        @functools.wraps(handler)
        def wrapped(event: Any, context: Any) -> Any:
            cold = next(invocations) == 0
            metrics.invocation_cold = cold
            if cold:
                metrics.cold_start(str(getattr(context, "function_name", "")))
            try:
                with tracer.in_subsegment(f"## {handler.__name__}") as subsegment:
                    subsegment.put_annotation("ColdStart", cold)
                    subsegment.put_annotation("Service", metrics.service)
                    return handler(event, context)
            finally:
                metrics.flush()

        return wrapped  # type: ignore[return-value]  # the signature of `handler`

    return decorate


class Metrics:
    """Metrics of one invocation, printed as one EMF line when it ends (`flush`)."""

    def __init__(self, namespace: str) -> None:
        # read once, at the handler's import: the function's own environment (the local stack
        # swaps os.environ per function while it imports them, as each Lambda process has its own)
        self.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or namespace
        self.service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "service_undefined"
        self.metrics: dict[str, tuple[str, list[float]]] = {}
        self.metadata: dict[str, Any] = {}
        self.requests: list[tuple[str, int, str | None]] = []
        self.counts: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
        self.invocation_cold = False  # set by `instrument` for the invocation under way

    @property
    def disabled(self) -> bool:
        return os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() in ("1", "true")

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.metrics.setdefault(name, (unit, []))[1].append(value)

    def add_request(self, route: str, status: int, fallback: str | None = None) -> None:
        """One request of `route` (its method and template path, ``GET /users/{user_id}/history``)
        answered with `status`; `fallback`, the reason when the answer fell back."""
        self.requests.append((route, status, fallback))

    def add_count(self, name: str, value: float, **dimensions: str) -> None:
        """Add `value` to the count `name` under ``service`` and `dimensions`: one line per set of
        dimensions when the invocation ends."""
        counts = self.counts.setdefault(tuple(sorted(dimensions.items())), {})
        counts[name] = counts.get(name, 0.0) + value

    def add_metadata(self, key: str, value: Any) -> None:
        self.metadata[key] = value

    def emf(self, metrics: dict[str, tuple[str, list[float]]], dimensions: dict[str, str]) -> str:
        """One line in the embedded metric format: `metrics` under `dimensions`, with the metadata."""
        definition = {
            "Namespace": self.namespace,
            "Dimensions": [list(dimensions)],
            "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in metrics.items()],
        }
        blob: dict[str, Any] = {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [definition]}}
        blob.update(dimensions)
        blob.update({name: values if len(values) > 1 else values[0] for name, (_, values) in metrics.items()})
        return json.dumps({**self.metadata, **blob}, default=str)

    def cold_start(self, function_name: str) -> None:
        if not self.disabled:
            dimensions = {"function_name": function_name, "service": self.service}
            print(self.emf({"ColdStart": ("Count", [1.0])}, dimensions), flush=True)

    def flush(self) -> None:
        """Print the invocation's metrics, with its metadata, as one EMF line, and a line for each
        request (`add_request`); then forget them all."""
        if not self.disabled:
            if self.metrics:
                print(self.emf(self.metrics, {"service": self.service}), flush=True)
            for route, status, fallback in self.requests:
                counts = {"Requests": 1, "ClientErrors": int(400 <= status < 500),
                          "ServerErrors": int(status >= 500), "ColdStarts": int(self.invocation_cold)}  # fmt: skip
                dimensions = {"service": self.service, "route": route}
                print(self.emf({k: ("Count", [float(v)]) for k, v in counts.items()}, dimensions), flush=True)
                if fallback is not None:
                    print(self.emf({"Fallbacks": ("Count", [1.0])}, {**dimensions, "reason": fallback}), flush=True)
            for dims, totals in self.counts.items():
                values = {name: ("Count", [value]) for name, value in totals.items()}
                print(self.emf(values, {"service": self.service, **dict(dims)}), flush=True)
        self.metrics, self.metadata, self.requests, self.counts = {}, {}, [], {}
