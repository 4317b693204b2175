"""TrainFunction: retrain on the base ratings and the site's likes, and publish the new model unless
it is worse than the one serving (`python -m training`'s code, run by a schedule in the stack).

Its answer says what happened: ``published`` (the pointer names the new model; ``visitors`` says
whether their likes are in it, and why, `training.gate`), ``kept`` (the quality gate held the new
one back; the log says why), ``current`` (the data and settings are the serving model's), or
``lost_race`` (another run swung the pointer first; nothing of this run remains). Anything else
raises, so the invocation counts as an error: bad ratings, an unreadable table, a store that
refuses a write, or a gate that cannot read the serving model's metrics.

It runs for minutes, so powertools' Logger, Metrics and Tracer cost it nothing that matters (the
API functions, where 0.2 s of imports is most of a cold start, use `recsys.telemetry` instead;
docs/OPERATIONS.md). Every run, whatever its outcome, emits in the namespace ``MovieRecommender``
under the dimension ``service`` (``train``): one of `OUTCOME_METRICS` at 1 and the others at 0, so
that an alarm can count kept runs in a row; ``TrainSeconds``; what it read (``RatingsRead``,
``EventsRead``, ``VisitorLikesRead``, ``Visitors``); the served model's offline ``ServedNdcgAt10``;
``ModelAgeHours`` of the model serving afterwards; ``Dropped`` per screening reason under the
dimensions ``service`` and ``reason``; and online quality (`training.online`), when the site showed
picks: ``LikeThrough``, the newest model version's liked picks per pick shown, once it has
`training.online.MIN_PICKS`, and ``LikeThroughRatio``, that rate over the version's before it,
which the LikeThroughFalling alarm watches.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from recsys.parts import model_key
from recsys.uri import ModelUri
from training import cli, online
from training.publish import writer_for

NAMESPACE = "MovieRecommender"  # the API functions' too (`recsys.api.NAMESPACE`)
SERVICE = "train"  # the template's POWERTOOLS_SERVICE_NAME, fixed here: the alarms name it
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)

OUTCOMES = {0: "published", 3: "lost_race", 4: "kept"}
#: One metric per outcome, 1 for this run's and 0 for the others.
OUTCOME_METRICS = {"published": "TrainPublished", "current": "TrainCurrent", "kept": "TrainKept",
                   "lost_race": "TrainLostRace", "failed": "TrainFailed"}  # fmt: skip
#: The run's summary (`training.cli.run`) as metrics: its key, the metric's name.
READ_METRICS = {"ratings_read": "RatingsRead", "events_read": "EventsRead", "visitor_likes_read": "VisitorLikesRead",
                "visitors": "Visitors", "served_ndcg@10": "ServedNdcgAt10"}  # fmt: skip


def arguments(env: dict[str, str] | os._Environ[str], data_cache: str) -> list[str]:
    """The command line of `python -m training` that the function's environment asks for."""
    return [
        "--ratings", env["RATINGS_URI"],
        "--model-uri", env["MODEL_URI"],
        "--feedback-table", env["FEEDBACK_TABLE"],
        "--like-cap", env.get("LIKE_CAP", "500"),
        "--max-drop", env.get("MAX_VALIDATION_DROP", "0.05"),
        "--visitor-band", env.get("VISITOR_BAND", "0.05"),
        "--keep", env.get("KEEP_VERSIONS", "10"),
        "--data-cache", data_cache,
        "--quiet",
        *(["--events-table", env["EVENTS_TABLE"]] if env.get("EVENTS_TABLE") else []),
    ]  # fmt: skip


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.monotonic()
    summary: dict[str, Any] = {}
    outcome = "failed"
    try:
        answer = train(summary)
        outcome = answer["outcome"]
        return answer
    finally:
        record(outcome, summary, time.monotonic() - started)


def train(summary: dict[str, Any]) -> dict[str, Any]:
    """One run of `python -m training` as the environment asks: its outcome, the version serving
    after it and the one before."""
    uri = ModelUri.parse(os.environ["MODEL_URI"])
    before = writer_for(uri).pointer()[0]
    # the ratings are downloaded per run, into /tmp, and removed with it: a warm container keeps nothing
    with tempfile.TemporaryDirectory(prefix="train-") as scratch:
        code = cli.main(arguments(os.environ, scratch), summary)
    if code not in OUTCOMES:
        raise RuntimeError(f"training failed with exit code {code}; its log above says why")
    after = writer_for(uri).pointer()[0]
    outcome = OUTCOMES[code]
    if code == 0 and before is not None and after is not None and before.get("version") == after.get("version"):
        outcome = "current"
    answer = {"outcome": outcome, "serving": (after or {}).get("version"), "previous": (before or {}).get("version")}
    if outcome == "published" and after is not None:
        published = json.loads(writer_for(uri).read(model_key(after["version"], "metrics.json")) or b"{}")
        answer["visitors"] = published.get("gate", {}).get("visitors")
    summary["serving_created_at"] = (after or {}).get("created_at")
    logger.info("training", extra={"answer": answer})
    return answer


def record(outcome: str, summary: dict[str, Any], seconds: float) -> None:
    """The run's metrics (the module's docstring names them); a run that failed still says so."""
    for name, metric in OUTCOME_METRICS.items():
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=int(name == outcome))
    metrics.add_metric(name="TrainSeconds", unit=MetricUnit.Seconds, value=round(seconds, 1))
    for key, metric in READ_METRICS.items():
        if summary.get(key) is not None:
            unit = MetricUnit.NoUnit if key == "served_ndcg@10" else MetricUnit.Count
            metrics.add_metric(name=metric, unit=unit, value=float(summary[key]))
    created = summary.get("serving_created_at")
    if created:
        age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        metrics.add_metric(name="ModelAgeHours", unit=MetricUnit.NoUnit, value=round(age.total_seconds() / 3600, 2))
    seen = summary.get("online") or {}
    newest = (seen.get("versions") or [None])[0]
    if newest and newest["picks"] >= online.MIN_PICKS:
        metrics.add_metric(name="LikeThrough", unit=MetricUnit.NoUnit, value=newest["like_through"])
    if (seen.get("change") or {}).get("ratio") is not None:
        metrics.add_metric(name="LikeThroughRatio", unit=MetricUnit.NoUnit, value=seen["change"]["ratio"])
    for reason, count in (summary.get("dropped") or {}).items():
        with single_metric(name="Dropped", unit=MetricUnit.Count, value=int(count), namespace=NAMESPACE) as single:
            single.add_dimension(name="service", value=SERVICE)
            single.add_dimension(name="reason", value=reason)
