"""TrainFunction: retrain on the base ratings and the site's likes, and publish the new model unless
it is worse than the one serving (`python -m training`'s code, run by a schedule in the stack).

Its answer says what happened: ``published`` (the pointer names the new model; ``visitors`` says
whether their likes are in it, and why, `training.gate`), ``kept`` (the quality gate held the new
one back; the log says why), ``current`` (the data and settings are the serving model's), or
``lost_race`` (another run swung the pointer first; nothing of this run remains). Anything else
raises, so the invocation counts as an error: bad ratings, an unreadable table, a store that
refuses a write, or a gate that cannot read the serving model's metrics.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any

from recsys.parts import model_key
from recsys.uri import ModelUri
from training import cli
from training.publish import writer_for

logger = logging.getLogger(__name__)

OUTCOMES = {0: "published", 3: "lost_race", 4: "kept"}


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


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    uri = ModelUri.parse(os.environ["MODEL_URI"])
    before = writer_for(uri).pointer()[0]
    # the ratings are downloaded per run, into /tmp, and removed with it: a warm container keeps nothing
    with tempfile.TemporaryDirectory(prefix="train-") as scratch:
        code = cli.main(arguments(os.environ, scratch))
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
    logger.info("training: %s", answer)
    return answer
