"""FeedbackFunction's cold start: process start to its first 200 of ``POST /feedback``.

A fresh interpreter per run (`bench.coldstart.child`), with the template's environment and
Lambda's (tracing on), against one moto server: S3 holds the model (FeedbackFunction reads its
catalog), DynamoDB the feedback table. Each run stores the likes of a new visitor, so every run
makes the query and the transaction a first request makes. The floor is ``import boto3, numpy;
boto3.client("s3")``, as in `bench.coldstart`, measured between the runs.

    .venv/bin/python -m bench.feedback_cold --store build/model-store --repeats 7
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    import boto3

    from bench import coldstart
    from devstack.dynamodb import create_feedback_table
    from devstack.s3 import moto_server, upload_store
    from devstack.servers import free_port
    from devstack.template import load_application

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=ROOT / "build/model-store", help="a local model store")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    spec = load_application().functions["FeedbackFunction"]
    event = json.loads((ROOT / "events/feedback.json").read_text())
    with moto_server(free_port()) as endpoint, tempfile.TemporaryDirectory() as work:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="bench-feedback-models")
        upload_store(s3, "bench-feedback-models", "recommender", args.store)
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        table = create_feedback_table(dynamodb, "bench-feedback")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "_X_AMZN"))}
        env = {**base, **spec.environment, **coldstart.LAMBDA_ENV, "PYTHONPATH": f"{ROOT}:{ROOT / 'layers/recsys'}",
               "MODEL_URI": "s3://bench-feedback-models/recommender", "ALLOWED_ORIGIN": "*", "FEEDBACK_TABLE": table,
               "AWS_LAMBDA_FUNCTION_NAME": "FeedbackFunction", "LAMBDA_TASK_ROOT": str(spec.code_uri),
               "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_REGION": "us-east-1"}  # fmt: skip
        floors, runs, modules = [], [], []
        for _ in range(args.repeats):
            floors.append(coldstart.run_once([sys.executable, "-c", coldstart.FLOOR], env)[0])
            event["body"] = json.dumps({**json.loads(event["body"]), "visitor_id": str(uuid.uuid4())})
            path = Path(work) / "feedback.json"
            path.write_text(json.dumps(event))
            seconds, answer = coldstart.run_once(
                [sys.executable, "-m", "bench.coldstart", "child", "functions.feedback.app", str(path)], env
            )
            if answer["status"] != 200:
                raise SystemExit(f"FeedbackFunction answered {answer['status']}, not 200")
            runs.append(seconds)
            modules = answer["modules"]
    floor, first = statistics.median(floors), statistics.median(runs)
    print(f"FeedbackFunction first 200: median {first:.3f} s (min {min(runs):.3f}, max {max(runs):.3f}, "
          f"n {len(runs)}); floor {floor:.3f} s; {first / floor:.2f}x; "
          f"AWS SDK modules imported: {len(modules)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
