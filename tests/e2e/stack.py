"""The local AWS and API that the loop's tests train and serve through: ratings in moto's S3, a
feedback table, TrainFunction's environment, and `scripts.localstack serve` on free ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3

from devstack.dynamodb import create_events_table, create_feedback_table
from devstack.servers import free_port, stop

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def local_aws(moto_endpoint: str, ratings: list[Path], name: str) -> Iterator[dict[str, Any]]:
    """`ratings` files under s3://<bucket>/ratings/ and a feedback table on moto, with TrainFunction's
    environment set in `os.environ` (restored after); yields that environment and the clients."""
    clients = {"endpoint_url": moto_endpoint, "region_name": "us-east-1", "aws_access_key_id": "testing",
               "aws_secret_access_key": "testing"}  # fmt: skip
    s3, dynamodb = boto3.client("s3", **clients), boto3.client("dynamodb", **clients)
    bucket = f"{name}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for path in ratings:
        s3.upload_file(str(path), bucket, f"ratings/{path.name}")
    table = create_feedback_table(dynamodb, f"{name}-{uuid.uuid4().hex[:12]}")
    events = create_events_table(dynamodb, f"{name}-events-{uuid.uuid4().hex[:12]}")
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": moto_endpoint, "MODEL_URI": f"s3://{bucket}/recommender",
           "RATINGS_URI": f"s3://{bucket}/ratings/", "FEEDBACK_TABLE": table, "EVENTS_TABLE": events,
           "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}  # fmt: skip
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield {**env, "s3": s3, "dynamodb": dynamodb, "bucket": bucket}
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def local_api(aws: dict[str, Any]) -> Iterator[dict[str, str]]:
    """The local API and website serving `aws`'s MODEL_URI, looking for a newer model every second."""
    api_port, web_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.localstack", "serve", "--model-uri", aws["MODEL_URI"], "--api-port",
         str(api_port), "--web-port", str(web_port), "--dynamodb-endpoint", aws["AWS_ENDPOINT_URL_DYNAMODB"],
         "--feedback-table", aws["FEEDBACK_TABLE"], "--events-table", aws["EVENTS_TABLE"]],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "MODEL_REFRESH_SECONDS": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("READY")
        yield {"api": f"http://127.0.0.1:{api_port}", "web": f"http://127.0.0.1:{web_port}"}
    finally:
        stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()
