"""Fixtures of the integration tests that run TrainFunction's handler."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.dynamodb import create_feedback_table
from recsys.feedback import FeedbackSettings, FeedbackStore


@pytest.fixture
def stack(s3: Any, moto_endpoint: str, checkerboard_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The checkerboard's GroupLens files under s3://<bucket>/ratings/, a feedback table, and
    TrainFunction's environment pointing at them."""
    for name in ("u.data", "u.item"):
        s3.upload_file(str(checkerboard_dir / name), s3.bucket, f"ratings/{name}")
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    table = create_feedback_table(dynamodb, f"feedback-{uuid.uuid4().hex[:12]}")
    # the gate is tested on its own (test_train_function.py): here a retrain may land either side of it
    env = {"RATINGS_URI": f"s3://{s3.bucket}/ratings/", "MODEL_URI": f"s3://{s3.bucket}/recommender",
           "FEEDBACK_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
           "MAX_VALIDATION_DROP": "0.9", "VISITOR_BAND": "0.9"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EVENTS_TABLE", raising=False)  # a test of the events names its own
    return {"s3": s3, "store": FeedbackStore(dynamodb, FeedbackSettings(table)), **env}
