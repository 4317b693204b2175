"""Each function's handler imported in isolation and invoked in process, as `sam local invoke` would."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import uuid
from types import ModuleType
from typing import Any

from devstack.template import ROOT, Application, Function
from recsys.parts import POINTER


class LambdaContext:
    def __init__(self, function: str) -> None:
        self.function_name = function
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function}"
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


class Invoker:
    """Loads each function's handler module in isolation and invokes it in process.

    Each function's ``app.py`` is imported under its own module name (so the three ``app`` modules
    never shadow each other), with the layer on ``sys.path`` and the function's environment set
    while it is imported; `overrides` stand in for the template's intrinsic values, and a variable
    already set in this process wins over the template's literal (``MODEL_REFRESH_SECONDS=1``).

    Every function is imported here, before any request: an import swaps ``os.environ``, which
    the whole process shares, so an import during another function's first request would hand
    that function this function's settings (a 60 s refresh instead of 1 s, once).

    Like one Lambda container per function, each function handles one event at a time: a
    handler module's state (its model store, its metrics of the invocation) is one container's.
    """

    def __init__(self, app: Application, overrides: dict[str, str], functions: list[str] | None = None) -> None:
        """`functions`: which to import (by default every zip function: those the API serves; one, as
        Lambda's init does, for a cold start; TrainFunction, whose image holds the training job)."""
        self.app = app
        self.overrides = overrides
        self.modules: dict[str, ModuleType] = {}
        self._busy = {name: threading.Lock() for name in app.functions}
        for layer in {p for f in app.functions.values() for p in f.layers}:
            if str(layer) not in sys.path:
                sys.path.insert(0, str(layer))
        os.environ.update({"POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"})
        os.environ.update(overrides)
        # what every function declares alike (the template's Globals) holds between imports too
        shared = set.intersection(*(set(f.environment.items()) for f in app.functions.values() if not f.image))
        os.environ.update({k: v for k, v in shared if k not in os.environ})
        for name in [n for n, f in app.functions.items() if not f.image] if functions is None else functions:
            self.modules[name] = self._import(app.functions[name])

    def handler(self, name: str) -> Any:
        fn = self.app.functions[name]
        return getattr(self.modules[name], fn.handler.rsplit(".", 1)[1])

    def _import(self, fn: Function) -> ModuleType:
        module_name, _ = fn.handler.rsplit(".", 1)
        path = fn.code_uri / f"{module_name.replace('.', '/')}.py"
        spec = importlib.util.spec_from_file_location(f"lambda_{fn.name}.{module_name}", path)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(f"{fn.name}: no handler module at {path}")
        module = importlib.util.module_from_spec(spec)
        saved = dict(os.environ)
        os.environ.update({**fn.environment, **saved, **self.overrides, "AWS_LAMBDA_FUNCTION_NAME": fn.name})
        try:
            spec.loader.exec_module(module)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return module

    def invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        handler = self.handler(name)
        with self._busy[name]:
            response: dict[str, Any] = handler(event, LambdaContext(name))
            return response


def sample_event(name: str, user_id: int | str, movie_id: int | str) -> dict[str, Any]:
    """The sample event `events/<name>.json` with its user and movie ids (196 and 50) replaced."""
    event: dict[str, Any] = json.loads((ROOT / "events" / f"{name}.json").read_text())
    event["path"] = event["path"].replace("/196", f"/{user_id}").replace("/50/", f"/{movie_id}/")
    for key, value in (("user_id", user_id), ("movie_id", movie_id)):
        if key in (event.get("pathParameters") or {}):
            event["pathParameters"][key] = str(value)
    return event


def store_uri(raw: str) -> str:
    """A model store's URI, given the store or its pointer (``.../latest.json``)."""
    trimmed = raw.rstrip("/")
    return trimmed[: -len(POINTER)].rstrip("/") or "." if trimmed.endswith(POINTER) else trimmed
