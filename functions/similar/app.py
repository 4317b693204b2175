"""SimilarFunction: movies similar to a movie, and title search."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths

from recsys import api, service
from recsys.routing import Query
from recsys.runtime import Runtime, register_snapstart
from recsys.schemas import K, MovieId, Movies, SearchQuery, Similar
from recsys.tracing import create_tracer

#: The parts of the model this function reads (`recsys.parts.PARTS`).
MODEL_PARTS = ("catalog", "item_vectors", "neighbours")

logger = Logger()
tracer = create_tracer()
metrics = Metrics(namespace=api.NAMESPACE)
app = api.create_app()
runtime = Runtime(metrics, parts=MODEL_PARTS, tracer=tracer)
register_snapstart(runtime)

Limit = Annotated[int, Query(ge=1, le=100, description="How many movies (1..100)")]


@app.get("/movies/{movie_id}/similar", tags=("movies",))
def similar(movie_id: MovieId, k: K = 10) -> Similar:
    """Movies whose LightFM item vectors are closest (cosine) to this movie's, itself excluded."""
    return service.similar(runtime.model(), movie_id, k)


@app.get("/movies", tags=("movies",))
def movies(query: SearchQuery = "", limit: Limit = 10) -> Movies:
    """Title search, case- and accent-insensitive; an empty query gives the most liked movies."""
    return service.search_movies(runtime.model(), query, limit)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return runtime.resolve(app, event)
