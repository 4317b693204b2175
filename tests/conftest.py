"""Shared fixtures: a clean environment per test, a moto S3 server per session, known-answer data."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devstack.dynamodb import create_events_table, create_feedback_table, patch_moto
from devstack.invoker import LambdaContext
from devstack.servers import free_port
from tests import data

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="module")
def _restore_environment_of_the_module() -> Iterator[None]:
    """What a module's fixtures put in the environment (an `Invoker` sets its overrides there, an
    events table among them) goes with the module: a later module never reads another's tables."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    os.environ.update(POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_DISABLED="true")
    # DynamoDB is moto's wherever a test says so; anywhere else a call finds nothing listening on
    # loopback, never AWS itself (tests send no traffic off this machine)
    os.environ.setdefault("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (S3, DynamoDB) on loopback, shared by the session (buckets and tables are per
    test), whose DynamoDB transactions copy only the items they touch and whose queries read one
    partition (`devstack.dynamodb.patch_moto`)."""
    from moto.server import ThreadedMotoServer

    patch_moto()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def feedback_env(moto_endpoint: str) -> dict[str, str]:
    """What FeedbackFunction needs of a local stack: a feedback table of its own on the moto server."""
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    table = create_feedback_table(client, f"feedback-{uuid.uuid4().hex[:12]}")
    return {"FEEDBACK_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}


@pytest.fixture(scope="module")
def events_env(moto_endpoint: str) -> dict[str, str]:
    """What EventsFunction and the readers of events need: an events table of the module's own on
    the moto server (a module that forgets users leaves their tombstones to no other)."""
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    table = create_events_table(client, f"events-{uuid.uuid4().hex[:12]}")
    return {"EVENTS_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}


@pytest.fixture
def s3(moto_endpoint: str) -> Iterator[object]:
    """A boto3 S3 client on the moto server, with AWS_ENDPOINT_URL set, and a fresh bucket."""
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket  # type: ignore[attr-defined]
    yield client


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext("TestFunction")


def load_event(name: str, **changes: object) -> dict:
    event = json.loads((ROOT / "events" / f"{name}.json").read_text())
    event.update(changes)
    return event


@pytest.fixture(scope="session")
def checkerboard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return data.write_checkerboard(tmp_path_factory.mktemp("checkerboard"))


@pytest.fixture(scope="session")
def model_store(checkerboard_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local model store holding a model the real training job trained on the checkerboard."""
    store = tmp_path_factory.mktemp("store")
    data.train(checkerboard_dir, str(store))
    return store
