"""EventsFunction: the site's own users' events, sent by its backend (IAM-signed), and forgetting a user."""

from __future__ import annotations

from typing import Any

from recsys import api, service, telemetry
from recsys.errors import ConfigurationError
from recsys.events import EventLog, event_log
from recsys.runtime import Runtime, register_snapstart
from recsys.schemas import EventsBody, EventsForgotten, EventsStored, UserId
from recsys.tracing import create_tracer

#: The parts of the model this function reads (`recsys.parts.PARTS`): which movie ids exist.
MODEL_PARTS = ("catalog",)

tracer = create_tracer()
metrics = telemetry.Metrics(namespace=api.NAMESPACE)
app = api.App()
runtime = Runtime(metrics, parts=MODEL_PARTS, tracer=tracer)
register_snapstart(runtime)
_log: EventLog | None = None


def log() -> EventLog:
    """The events table, on a client made on first use (a bad setting answers 503, as the model's do)."""
    global _log
    if _log is None:
        _log = event_log()
        if _log is None:
            raise ConfigurationError("EVENTS_TABLE is not set")
    return _log


@app.post("/events", tags=("events",), responses={**api.POST_RESPONSES, **api.EVENTS_RESPONSES})
def events(body: EventsBody) -> EventsStored:
    """Store a user's events; their next request reflects them, and the next training learns them."""
    return service.record_events(runtime.model(), log(), body)


@app.delete("/users/{user_id}/events", tags=("events",), responses={**api.RESPONSES, **api.EVENTS_RESPONSES})
def forget(user_id: UserId) -> EventsForgotten:
    """Forget a user: their events are deleted now, and the next model holds none of their ratings."""
    return service.forget_user(log(), user_id)


@telemetry.instrument(tracer, metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return runtime.resolve(app, event)
