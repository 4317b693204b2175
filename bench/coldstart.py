"""One cold start of one function, in a fresh process: prints its phases as JSON.

Phases: ``imports`` (the handler module with the layer, as Lambda's init), ``s3`` (pointer and
pickle reads through the store's boto3 client), ``verify`` (size + sha256), ``unpickle`` (the
allow-list unpickler and the artifact's own checks), ``first_response`` (the whole first
invocation, which includes the three before it), and ``total`` = imports + first_response.

    python -m bench.coldstart RecommendFunction s3://bucket/prefix   # AWS_ENDPOINT_URL for moto
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

STARTED = time.perf_counter()


def main(function: str, model_uri: str) -> dict[str, float]:
    from scripts.localstack import Invoker, LambdaContext, api_event, load_application

    app = load_application()
    setup = time.perf_counter()  # Lambda's init: this one function's module, with the layer
    invoker = Invoker(app, {"MODEL_URI": model_uri, "ALLOWED_ORIGIN": "*"}, functions=[function])
    imports = time.perf_counter() - setup
    handler = invoker.handler(function)

    from recsys import store

    phases = {"s3": 0.0, "load": 0.0}
    read, load = store.S3Reader.read, store.load_artifact

    def timed_read(self, relative):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return read(self, relative)
        finally:
            phases["s3"] += time.perf_counter() - t

    blobs: list[bytes] = []

    def timed_load(data, **kwargs):  # type: ignore[no-untyped-def]
        blobs.append(data)
        t = time.perf_counter()
        try:
            return load(data, **kwargs)
        finally:
            phases["load"] += time.perf_counter() - t

    store.S3Reader.read = timed_read  # type: ignore[method-assign]
    store.load_artifact = timed_load  # type: ignore[assignment]
    route = next(r for r in app.routes if r.function == function and "{" in r.path)
    path = route.path.replace("{user_id}", "1").replace("{movie_id}", "1")
    t = time.perf_counter()
    response = handler(api_event(route, "GET", path, "", {}, b""), LambdaContext(function))
    first = time.perf_counter() - t
    if response["statusCode"] not in (200, 404):  # id 1 may not exist in generated data: 404 is an answer
        raise SystemExit(f"{function}: first response {response['statusCode']}: {response['body'][:300]}")
    t = time.perf_counter()
    hashlib.sha256(blobs[0]).hexdigest()
    verify = time.perf_counter() - t
    return {
        "imports": imports,
        "s3": phases["s3"],
        "verify": verify,
        "unpickle": max(phases["load"] - verify, 0.0),
        "first_response": first,
        "total": imports + first,
        "process_to_first_response": time.perf_counter() - STARTED,
        "status": response["statusCode"],
        "bytes": len(blobs[0]),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
