"""SimilarFunction: movies similar to a movie, and title search."""

from __future__ import annotations

from typing import Annotated, Any

from recsys import api, service, telemetry
from recsys.routing import Query
from recsys.runtime import Runtime, register_snapstart
from recsys.schemas import K, MovieId, Movies, SearchQuery, Similar
from recsys.tracing import create_tracer

#: The parts of the model this function reads (`recsys.parts.PARTS`).
MODEL_PARTS = ("catalog", "item_vectors", "neighbours")

tracer = create_tracer()
metrics = telemetry.Metrics(namespace=api.NAMESPACE)
app = api.App()
runtime = Runtime(metrics, parts=MODEL_PARTS, tracer=tracer)
register_snapstart(runtime)

Limit = Annotated[int, Query(ge=1, le=100, description="How many movies (1..100)")]


@app.get("/movies/{movie_id}/similar", tags=("movies",))
def similar(movie_id: MovieId, k: K = 10) -> Similar:
    """Movies whose LightFM item vectors are closest (cosine) to this movie's, itself excluded."""
    return service.similar(runtime.model(), movie_id, k)


@app.get("/movies", tags=("movies",))
def movies(query: SearchQuery = "", limit: Limit = 10) -> Movies:
    """Title search, case- and accent-insensitive, forgiving a missing space; when no title matches,
    the closest titles (`match`: "closest"). An empty query gives the most liked movies."""
    return service.search_movies(runtime.model(), query, limit)


@telemetry.instrument(tracer, metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return runtime.resolve(app, event)
