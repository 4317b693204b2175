"""RecommendFunction: personalized and popularity recommendations, and the serving model's card."""

from __future__ import annotations

from typing import Any

from recsys import api, service, telemetry
from recsys.events import read_for, serving_log
from recsys.runtime import Runtime, register_snapstart
from recsys.schemas import Explain, Genre, K, Kind, ModelInfo, Recommendations, TasteBody, TasteRecommendations, UserId
from recsys.tracing import create_tracer

#: The parts of the model this function reads (`recsys.parts.PARTS`).
MODEL_PARTS = ("catalog", "item_vectors", "item_item", "user_vectors", "histories")

tracer = create_tracer()
metrics = telemetry.Metrics(namespace=api.NAMESPACE)
app = api.App()
runtime = Runtime(metrics, parts=MODEL_PARTS, tracer=tracer)
register_snapstart(runtime)


@app.get("/recommendations/{user_id}", tags=("recommendations",))
def recommendations(
    user_id: UserId, k: K = 10, model: Kind = "personalized", genre: Genre = None, explain: Explain = False
) -> Recommendations:
    """Movies for a user: personalized (LightFM blended with an item-item model), with what they did since
    training (POST /events) already in it, or popularity; unknown users without events get popularity."""
    events = read_for(serving_log(), user_id, runtime.cold)  # cold: read while the model loads
    return service.recommendations(runtime.model(), user_id, k, model, genre, explain, events)


@app.post("/recommendations", tags=("recommendations",))
def recommendations_for_taste(taste: TasteBody) -> TasteRecommendations:
    """Personalized picks for anyone, from the movies they like: folded in per request, nothing stored."""
    return service.recommendations_for(
        runtime.model(), taste.liked, taste.disliked, taste.k, taste.genre, taste.explain
    )


@app.get("/model", tags=("model",))
def model_card() -> ModelInfo:
    """The serving model's version, data summary and evaluation metrics."""
    return service.model_info(runtime.model())


@telemetry.instrument(tracer, metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return runtime.resolve(app, event)
