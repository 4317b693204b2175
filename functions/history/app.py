"""HistoryFunction: a user's liked movies, and a sample of users for the website's picker."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths

from recsys import api, service
from recsys.routing import Query
from recsys.runtime import Runtime, register_snapstart
from recsys.schemas import History, Offset, Seed, UserId, Users
from recsys.tracing import create_tracer

#: The parts of the model this function reads (`recsys.parts.PARTS`).
MODEL_PARTS = ("catalog", "histories", "ratings")

logger = Logger()
tracer = create_tracer()
metrics = Metrics(namespace=api.NAMESPACE)
app = api.create_app()
runtime = Runtime(metrics, parts=MODEL_PARTS, tracer=tracer)
register_snapstart(runtime)

HistoryK = Annotated[int, Query(ge=1, le=100, description="How many items (1..100)")]
Limit = Annotated[int, Query(ge=1, le=100, description="How many users (1..100)")]


@app.get("/users/{user_id}/history", tags=("users",))
def history(user_id: UserId, k: HistoryK = 20, offset: Offset = 0) -> History:
    """The movies a user liked, newest first, with rating and date."""
    return service.history(runtime.model(), user_id, k, offset)


@app.get("/users", tags=("users",))
def users(limit: Limit = 36, seed: Seed = 0) -> Users:
    """A deterministic sample of users, with how many movies they liked and their top genres."""
    return service.sample_users(runtime.model(), limit, seed)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return runtime.resolve(app, event)
