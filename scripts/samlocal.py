"""The real SAM CLI locally: an emulation image built without a registry, moto in a container, sam local.

    python -m scripts.samlocal image                          # make sam-image
    python -m scripts.samlocal invoke FN EVENT [--model-uri]  # make sam-invoke: prints the response
    python -m scripts.samlocal demo                           # make demo API=sam

How the images are built and how the stack is wired: `devstack.docker`, `devstack.sam`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from devstack import demo
from devstack.docker import DockerUnavailable, docker_daemon, ensure_images
from devstack.sam import SamStack
from devstack.template import ROOT


def invoke(function: str, event: Path, model_uri: str) -> int:
    store = Path(model_uri)
    if not (store / "latest.json").is_file():
        print(f"error: no model at {store} (no latest.json); `make train` publishes one there", file=sys.stderr)
        return 2
    with SamStack(store, log=lambda m: print(m, file=sys.stderr)) as stack:
        code, response, log = stack.invoke(function, event)
    if response is None:
        print(log[-3000:], file=sys.stderr)
        return code or 1
    print(json.dumps(response, indent=2))
    failed = code != 0 or "errorMessage" in response or int(response.get("statusCode", 500)) >= 500
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.samlocal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("image", help="build (or reuse) the emulation and moto images for the template's runtime")
    inv = sub.add_parser("invoke", help="sam local invoke FN with EVENT against the last `make train` model")
    inv.add_argument("function")
    inv.add_argument("event", type=Path)
    inv.add_argument("--model-uri", default=str(ROOT / "build/model-store"))
    dem = sub.add_parser("demo", help="moto in a container, train and publish, sam local start-api, website")
    dem.add_argument("--ratings", default=os.environ.get("RATINGS") or "data/ml-100k")
    dem.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT") or 3000))
    dem.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT") or 8080))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.command == "image":
            with docker_daemon():
                ensure_images()
            return 0
        if args.command == "invoke":
            return invoke(args.function, args.event, args.model_uri)
        return demo.run("sam", args.ratings, args.api_port, args.web_port, 0)
    except DockerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
