"""What one container keeps between requests: its settings and its model store, and SnapStart's hooks."""

from __future__ import annotations

import logging
from typing import Any

from recsys import api
from recsys.artifact import ModelArtifact
from recsys.config import Settings
from recsys.errors import ConfigurationError
from recsys.store import ModelStore
from recsys.telemetry import Metrics
from recsys.tracing import Tracer, XRayDaemon

logger = logging.getLogger(__name__)


class Runtime:
    """What one container keeps between requests: its settings and its model store.

    Nothing is read at construction; the first request reads the settings and loads the model (only
    `parts` of it: see the parts the function declares), so a bad setting or an unreachable S3
    becomes a 503 instead of a crashed init.
    """

    def __init__(
        self, metrics: Metrics | None = None, parts: tuple[str, ...] | None = None, tracer: Tracer | None = None
    ) -> None:
        self.metrics = metrics
        self.parts = parts
        self._observe = tracer.remote if isinstance(tracer, XRayDaemon) else None
        self._settings: Settings | None = None
        self._store: ModelStore | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def store(self) -> ModelStore:
        if self._store is None:
            self._store = ModelStore(self.settings, on_load=self._loaded, parts=self.parts, observe=self._observe)
        return self._store

    def model(self) -> ModelArtifact:
        return self.store.get()

    @property
    def cold(self) -> bool:
        """Whether no model is loaded yet: the next `model()` loads one (the cold path)."""
        return self._store is None or self._store._model is None

    def resolve(self, app: api.App, event: dict[str, Any]) -> dict[str, Any]:
        """The response to `event`: routed by `app` (see `recsys.api.handle`), with CORS headers;
        counted in `metrics` by route, status and fallback (`recsys.telemetry.Metrics.add_request`)."""
        response = api.handle(app, event, self._allowed_origin())
        if self.metrics is not None:
            status = int(response["statusCode"])
            self.metrics.add_request(app.route_of(event), status, api.fallback_of(status, response["body"]))
        return response

    def _allowed_origin(self) -> str | None:
        try:
            return self.settings.allowed_origin
        except ConfigurationError:
            return None

    # -- SnapStart (see `register_snapstart`) ------------------------------------------------

    def before_snapshot(self) -> None:
        """Load the model during init, so that the snapshot holds it.

        A failure is logged, never raised: the init goes on, and the first request after a restore
        loads the model lazily, as it does without SnapStart.
        """
        try:
            self.model()
        except Exception:  # a crashed init would fail every restore of this version
            logger.warning("no model before the snapshot; the first request will load it", exc_info=True)

    def after_restore(self) -> None:
        """Start fresh from a snapshot: the next request checks the pointer (the snapshot may be
        days old), on a new S3 client, with no failure remembered from before the snapshot."""
        if self._store is not None:
            self._store.restored()

    def _loaded(self, model: ModelArtifact, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name="ModelLoadMs", unit="Milliseconds", value=seconds * 1000)
            self.metrics.add_metadata(key="model_version", value=model.version)


def register_snapstart(runtime: Runtime) -> None:
    """Register `runtime`'s SnapStart hooks with Lambda's runtime module, where there is one.

    Lambda's Python runtimes from 3.12 ship ``snapshot_restore_py``; it exists nowhere else, so it
    is imported optionally. The hooks run only for a function with SnapStart on.
    """
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return
    register_before_snapshot(runtime.before_snapshot)
    register_after_restore(runtime.after_restore)
