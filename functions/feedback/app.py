"""FeedbackFunction: a visitor's likes, stored for the next training, and forgotten on request."""

from __future__ import annotations

from typing import Any

from recsys import api, service, telemetry
from recsys.feedback import FeedbackSettings, FeedbackStore, dynamodb_client
from recsys.runtime import Runtime, register_snapstart
from recsys.schemas import FeedbackBody, FeedbackStored, Forgotten, VisitorId
from recsys.tracing import create_tracer

#: The parts of the model this function reads (`recsys.parts.PARTS`): which movie ids exist.
MODEL_PARTS = ("catalog",)

tracer = create_tracer()
metrics = telemetry.Metrics(namespace=api.NAMESPACE)
app = api.App()
runtime = Runtime(metrics, parts=MODEL_PARTS, tracer=tracer)
register_snapstart(runtime)
_store: FeedbackStore | None = None


def store() -> FeedbackStore:
    """The table of likes, on a client made on first use (a bad setting answers 503, as the model's do)."""
    global _store
    if _store is None:
        _store = FeedbackStore(dynamodb_client(), FeedbackSettings.from_env())
    return _store


@app.post("/feedback", tags=("feedback",), responses={**api.POST_RESPONSES, **api.FEEDBACK_RESPONSES})
def feedback(body: FeedbackBody) -> FeedbackStored:
    """Store movies a visitor liked, or stopped liking, for the next training, and count the picks the
    site showed them; a retried request stores nothing more."""
    model = runtime.model()
    stored = service.store_feedback(model, store(), body)
    # online quality as it happens: picks shown and liked, per list (the nightly job's figures are per model)
    for (_, kind), picks in service.shown_counts(model, body).items():
        metrics.add_count("Impressions", picks, list=kind)
    for movie, source in service.picked_sources(model, body).items():
        if movie in stored["liked"]:
            metrics.add_count("AttributedLikes", 1, list=source.list)
    return stored


@app.delete("/feedback/{visitor_id}", tags=("feedback",), responses={**api.RESPONSES, **api.FEEDBACK_RESPONSES})
def forget(visitor_id: VisitorId) -> Forgotten:
    """Forget a visitor: every like is deleted now, and the next model is trained without them."""
    return service.forget(store(), visitor_id)


@telemetry.instrument(tracer, metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return runtime.resolve(app, event)
