"""Run the SAM application without Docker: invoke a function, serve the API, or run the whole demo.

    python -m scripts.localstack invoke RecommendFunction events/recommend.json
    python -m scripts.localstack serve --model-uri build/model-store [--web-port 8080]
    python -m scripts.localstack demo            # moto S3 + train/publish + API + website
    python -m scripts.localstack retrain         # TrainFunction's handler against the running demo
    python -m scripts.localstack event --user 196   # sign and send a like of user 196's top pick to it

Everything comes from template.yaml (see `devstack`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from devstack import demo
from devstack.dynamodb import FEEDBACK_TABLE, create_events_table, create_feedback_table
from devstack.gateway import serve, serve_site
from devstack.invoker import Invoker, store_uri
from devstack.s3 import moto_server
from devstack.servers import free_port
from devstack.template import ROOT, load_application
from recsys.parts import POINTER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.localstack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inv = sub.add_parser("invoke", help="invoke one function with an event file, like `sam local invoke`")
    inv.add_argument("function", help="logical id in template.yaml, e.g. RecommendFunction")
    inv.add_argument("event", type=Path)
    inv.add_argument("--model-uri", default=os.environ.get("MODEL_URI", str(ROOT / "build/model-store")))
    srv = sub.add_parser("serve", help="serve the API (and the website) against a model store")
    srv.add_argument("--model-uri", required=True)
    srv.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", 3000)))
    srv.add_argument("--web-port", type=int, default=None)
    srv.add_argument("--allowed-origin", default="*")
    srv.add_argument("--dynamodb-endpoint", help="a local DynamoDB holding the feedback table (default: a moto "
                     "server of its own, with the table made)")  # fmt: skip
    srv.add_argument("--feedback-table", default=FEEDBACK_TABLE)
    srv.add_argument("--events-table", help="the users' events table on that DynamoDB (default: one made there)")
    dem = sub.add_parser("demo", help="moto S3, train and publish, serve API and website")
    dem.add_argument("--ratings", default=os.environ.get("RATINGS") or "data/ml-100k")
    dem.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT") or 3000))
    dem.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT") or 8080))
    dem.add_argument("--s3-port", type=int, default=int(os.environ.get("S3_PORT") or 5055))
    ret = sub.add_parser("retrain", help="run TrainFunction's handler against the running demo's local AWS")
    ret.add_argument("--endpoint", help="the demo's local AWS (default: the running demo's, from build/demo.json; "
                     "or http://127.0.0.1:$S3_PORT)")  # fmt: skip
    evt = sub.add_parser("event", help="sign and send one user's event to the running demo: picks before and after")
    evt.add_argument("--user", type=int, required=True, help="a user id of the ratings file (196, ...)")
    evt.add_argument("--movie", type=int, help="the movie (default: the user's top pick)")
    evt.add_argument("--kind", choices=("like", "unlike", "rating"), default="like")
    evt.add_argument("--rating", type=float, help="with --kind rating: 0.5 to 5")
    evt.add_argument("--api", help="the API (default: the running demo's, from build/demo.json)")
    args = parser.parse_args(argv)
    # Ctrl-C and SIGTERM stop the servers cleanly. Set explicitly: a process started in the
    # background by a non-interactive shell inherits SIGINT ignored, and Python then keeps it so.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    if args.command == "invoke":
        app = load_application()
        if args.function not in app.functions:
            parser.error(f"no function {args.function!r} in template.yaml; there are {', '.join(app.functions)}")
        store = store_uri(args.model_uri)
        if "://" not in store and not (Path(store) / POINTER).is_file():
            print(f"error: no model at {store} (no {POINTER}); `make train` publishes one there", file=sys.stderr)
            return 2
        invoker = Invoker(app, {"MODEL_URI": store, "ALLOWED_ORIGIN": "*"}, functions=[args.function])
        print(json.dumps(invoker.invoke(args.function, json.loads(args.event.read_text())), indent=2))
        return 0
    if args.command == "serve":
        try:  # a signal may come the moment READY is read, while print is still flushing
            with contextlib.ExitStack() as stack:
                endpoint = args.dynamodb_endpoint
                for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # a local DynamoDB takes any
                    os.environ.setdefault(name, "testing")
                if not os.environ.get("VERBOSE"):
                    # each request's metrics line is for CloudWatch; here it would fill the terminal,
                    # or the pipe of a parent that reads only READY until the server blocks on it
                    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
                import boto3

                if endpoint is None:
                    endpoint = stack.enter_context(moto_server(free_port()))
                    create_feedback_table(boto3.client("dynamodb", endpoint_url=endpoint), args.feedback_table)
                events = args.events_table or create_events_table(
                    boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1"),
                    f"events-{os.urandom(6).hex()}",
                )
                servers = [serve(args.model_uri, args.api_port, endpoint, args.allowed_origin, args.feedback_table,
                                 events)]  # fmt: skip
                if args.web_port is not None:
                    servers.append(serve_site(f"http://127.0.0.1:{servers[0].server_port}", args.web_port))
                print("READY " + " ".join(f"http://127.0.0.1:{s.server_port}" for s in servers), flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    if args.command == "retrain":
        endpoint = args.endpoint or (f"http://127.0.0.1:{os.environ['S3_PORT']}" if os.environ.get("S3_PORT")
                                     else demo.running_endpoint())  # fmt: skip
        if endpoint is None:
            print("error: no demo is running (start `make demo` first, or give S3_PORT)", file=sys.stderr)
            return 2
        answer = demo.retrain(endpoint)
        print(json.dumps(answer))
        return 0 if answer.get("outcome") in ("published", "current", "kept") else 1
    if args.command == "event":
        api_url = args.api or demo.running_api()
        if api_url is None:
            print("error: no demo is running (start `make demo` first, or give --api)", file=sys.stderr)
            return 2
        shown = demo.send_event(api_url, args.user, args.movie, args.kind, args.rating)
        print(f"user {args.user}'s picks before: {shown['before']}")
        print(f"POST /events (signed): {json.dumps(shown['events'])}")
        late = "" if shown["realtime"] else "   (the events table did not answer in time: the model's picks alone)"
        print(f"user {args.user}'s picks after:  {shown['after']}{late}")
        return 0 if "status" not in shown["events"] else 1
    return demo.run("local", args.ratings, args.api_port, args.web_port, args.s3_port)


if __name__ == "__main__":
    sys.exit(main())
