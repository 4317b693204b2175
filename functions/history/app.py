"""HistoryFunction: a user's liked movies, and a sample of users for the website's picker."""

from __future__ import annotations

from typing import Annotated, Any

from recsys import api, service, telemetry
from recsys.events import read_for, serving_log
from recsys.routing import Query
from recsys.runtime import Runtime, register_snapstart
from recsys.schemas import History, Offset, Seed, UserId, Users
from recsys.tracing import create_tracer

#: The parts of the model this function reads (`recsys.parts.PARTS`).
MODEL_PARTS = ("catalog", "histories", "ratings")

tracer = create_tracer()
metrics = telemetry.Metrics(namespace=api.NAMESPACE)
app = api.App()
runtime = Runtime(metrics, parts=MODEL_PARTS, tracer=tracer)
register_snapstart(runtime)

HistoryK = Annotated[int, Query(ge=1, le=100, description="How many items (1..100)")]
Limit = Annotated[int, Query(ge=1, le=100, description="How many users (1..100)")]


@app.get("/users/{user_id}/history", tags=("users",))
def history(user_id: UserId, k: HistoryK = 20, offset: Offset = 0) -> History:
    """The movies a user liked, newest first, with rating and date: likes sent as events since training first."""
    events = read_for(serving_log(), user_id, runtime.cold)  # cold: read while the model loads
    return service.history(runtime.model(), user_id, k, offset, events)


@app.get("/users", tags=("users",))
def users(limit: Limit = 36, seed: Seed = 0) -> Users:
    """A deterministic sample of users, with how many movies they liked and their top genres."""
    return service.sample_users(runtime.model(), limit, seed)


@telemetry.instrument(tracer, metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return runtime.resolve(app, event)
