"""`make demo`: a local AWS (moto: S3 and DynamoDB), the real training job publishing into it, the
API and the website; `make retrain` runs TrainFunction's handler against it.

One loop for both ways of serving the API: in process (`serve`, no Docker) or by the real SAM CLI
(`sam local start-api` against moto in a container). Ctrl-C or SIGTERM stops everything.

The loop the stack closes on AWS, here: a visitor likes movies on the taste page (POST /feedback
stores them in the table), `make retrain` trains on the base ratings (uploaded to the local S3,
as a user uploads them for `RatingsUri`) and the likes, and publishes; the API swaps to the new
model within `REFRESH_SECONDS`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.dynamodb import EVENTS_TABLE, FEEDBACK_TABLE, create_events_table, create_feedback_table
from devstack.gateway import serve, serve_site
from devstack.invoker import Invoker
from devstack.s3 import moto_server
from devstack.template import ROOT, load_application

BUCKET = "recommender-models"
PREFIX = "recommender"
RATINGS_BUCKET = "recommender-ratings"
#: How often the demo's functions look for a newer model (the template's 60 s is for AWS).
REFRESH_SECONDS = "5"


#: Where a running demo says where its local AWS and API are (`make retrain` reads it).
STATE = ROOT / "build" / "demo.json"


def taken_ports(ports: dict[str, int]) -> list[str]:
    """What to tell the user for each of `ports` (variable: port) that something already listens on."""
    from devstack.servers import port_is_free

    return [f"port {port} ({name}) is in use: free it, or run `make demo {name}=<another port>`"
            for name, port in ports.items() if port and not port_is_free(port)]  # fmt: skip


def run(api: str, ratings: str, api_port: int, web_port: int, s3_port: int) -> int:
    """Train on `ratings`, publish to a local S3, serve the API (`api`: "local" or "sam") and the site."""
    from training.cli import main as train

    ports = {"API_PORT": api_port, "WEB_PORT": web_port, **({"S3_PORT": s3_port} if api != "sam" else {})}
    taken = taken_ports(ports)
    if taken:  # before anything starts: a server that cannot listen must not leave the demo waiting
        for line in taken:
            print(f"error: {line}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if os.environ.get("VERBOSE"):  # every request's access line and the functions' metrics lines
        os.environ.setdefault("LOCALSTACK_ACCESS_LOG", "1")
    else:  # after READY the terminal stays quiet: the addresses stay on screen
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    with contextlib.ExitStack() as stack:
        if api == "sam":
            from devstack.sam import SamStack

            sam = stack.enter_context(SamStack(log=lambda m: print(m, flush=True)))
            endpoint, model_uri = sam.moto_endpoint, sam.model_uri
            sam.s3().create_bucket(Bucket=BUCKET)
        else:
            endpoint, model_uri = stack.enter_context(moto_server(s3_port)), f"s3://{BUCKET}/{PREFIX}"
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
        if api != "sam":
            import boto3

            for bucket in (BUCKET, "recommender-website"):
                boto3.client("s3").create_bucket(Bucket=bucket)
            create_feedback_table(boto3.client("dynamodb"))
            create_events_table(boto3.client("dynamodb"))
            upload_ratings(boto3.client("s3"), Path(ratings))
            os.environ.setdefault("MODEL_REFRESH_SECONDS", REFRESH_SECONDS)
        code = train(["--ratings", ratings, "--model-uri", model_uri, "--cache-dir", str(ROOT / "build/cache")])
        if code != 0:
            return code
        if api == "sam":
            api_url = stack.enter_context(sam.start_api(api_port))
        else:
            server = stack.enter_context(_running(serve(model_uri, api_port, endpoint)))
            api_url = f"http://127.0.0.1:{server.server_port}"
        web = f"http://127.0.0.1:{stack.enter_context(_running(serve_site(api_url, web_port))).server_port}"
        how = " (sam local start-api)" if api == "sam" else ""
        print(f"\nAPI      {api_url}{how}   (try {api_url}/recommendations/196?explain=true)")
        print(f"Website  {web}/index.html   similar: {web}/similar.html   model: {web}/model.html")
        print("Event    make event USER_ID=196   (the site's backend signs POST /events, a like of user 196's top "
              "pick: their picks before and after)")
        if api != "sam":
            print(f"Retrain  make retrain   (trains on s3://{RATINGS_BUCKET}/ratings/ and the likes of "
                  f"{web}/taste.html, publishes, and the API swaps within {REFRESH_SECONDS} s)")  # fmt: skip
        STATE.parent.mkdir(parents=True, exist_ok=True)
        STATE.write_text(json.dumps({"pid": os.getpid(), "aws": endpoint, "api": api_url, "web": web}) + "\n")
        stack.callback(STATE.unlink, missing_ok=True)
        print(f"READY api={api_url} web={web} ({time.perf_counter() - started:.1f} s)  Ctrl-C stops everything"
              + ("" if os.environ.get("VERBOSE") else "; VERBOSE=1 shows each request"), flush=True)  # fmt: skip
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping")
    return 0


def running_endpoint() -> str | None:
    """The local AWS of the demo running now, from `STATE` (None: no demo runs)."""
    return _state_of("aws")


def running_api() -> str | None:
    """The API of the demo running now, from `STATE` (None: no demo runs)."""
    return _state_of("api")


def _state_of(key: str) -> str | None:
    try:
        state = json.loads(STATE.read_text())
        os.kill(int(state["pid"]), 0)  # still there?
        return str(state[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def send_event(api_url: str, user_id: int, movie_id: int | None = None, kind: str = "like",
               rating: float | None = None, k: int = 5) -> dict[str, Any]:  # fmt: skip
    """What the site's backend does when one of its users acts: `POST /events` signed with SigV4
    (the local stack's test credentials, as a backend's role would sign on AWS), between two
    reads of the user's picks, to show the next request reflecting it; `movie_id` defaults to
    their top pick. Returns the picks ``before`` and ``after`` (movie ids, best first), what
    `POST /events` answered, and whether the picks after read the events (``realtime``)."""
    from botocore.auth import SigV4Auth  # the demo's own venv has botocore; serving never imports it
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def ask() -> dict[str, Any]:
        with urllib.request.urlopen(f"{api_url}/recommendations/{user_id}?k={k}", timeout=30) as response:
            found: dict[str, Any] = json.loads(response.read())
            return found

    def picks() -> list[int]:
        return [item["movie_id"] for item in ask()["items"]]

    def picks_after() -> tuple[list[int], bool]:
        """The next picks, from an answer that read the user's events: one whose read passed its
        deadline (a busy local DynamoDB; ``"realtime": false``) is the model's alone, so ask again."""
        for _ in range(10):
            found = ask()
            if found.get("realtime", True):
                break
            time.sleep(0.5)
        return [item["movie_id"] for item in found["items"]], bool(found.get("realtime", True))

    before = picks()
    if movie_id is None:
        movie_id = before[0]
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    event: dict[str, Any] = {"movie_id": movie_id, "kind": kind, "at": at}
    if rating is not None:
        event["rating"] = rating
    body = json.dumps({"user_id": user_id, "events": [event]}).encode()
    headers = {"Content-Type": "application/json"}
    request = AWSRequest(method="POST", url=f"{api_url}/events", data=body, headers=headers)
    SigV4Auth(Credentials("testing", "testing"), "execute-api", "us-east-1").add_auth(request)
    signed = urllib.request.Request(request.url, data=body, method="POST", headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(signed, timeout=30) as answer:
            stored = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        stored = {"status": exc.code, **json.loads(exc.read() or b"{}")}
    after, realtime = picks_after()
    return {"before": before, "events": stored, "after": after, "realtime": realtime}


def upload_ratings(s3: Any, ratings: Path) -> str:
    """Copy a local ratings folder (or file) to s3://RATINGS_BUCKET/ratings/: TrainFunction's RatingsUri."""
    s3.create_bucket(Bucket=RATINGS_BUCKET)
    files = sorted(p for p in ratings.iterdir() if p.is_file()) if ratings.is_dir() else [ratings]
    for path in files:
        s3.upload_file(str(path), RATINGS_BUCKET, f"ratings/{path.name}")
    return f"s3://{RATINGS_BUCKET}/ratings/"


def retrain(endpoint: str) -> dict[str, Any]:
    """Run TrainFunction's handler, as the schedule starts it, against the demo's local AWS at `endpoint`."""
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    app = load_application()
    overrides = {"MODEL_URI": f"s3://{BUCKET}/{PREFIX}", "RATINGS_URI": f"s3://{RATINGS_BUCKET}/ratings/",
                 "FEEDBACK_TABLE": FEEDBACK_TABLE, "EVENTS_TABLE": EVENTS_TABLE,
                 "AWS_ENDPOINT_URL_DYNAMODB": endpoint}  # fmt: skip
    invoker = Invoker(app, overrides, functions=["TrainFunction"])
    event = json.loads((ROOT / "events" / "train.json").read_text())
    return invoker.invoke("TrainFunction", event)


@contextlib.contextmanager
def _running(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    try:
        yield server
    finally:
        server.shutdown()
