"""Warm in-handler latency: API Gateway event in, response dict out, per route, in process.

Each function is imported as the local stack imports it (its own modules, the layer on the path,
its environment from template.yaml), warmed, then called with pre-built events for varied users
and movies; one sample is the wall time of one ``lambda_handler(event, context)`` call.

    python -m bench.latency --model-uri build/model-store --requests 10000

`make bench` runs it in a process of its own, started with the functions' malloc settings from
template.yaml (glibc reads them at process start only, as on Lambda).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from devstack.gateway import LocalApi, api_event
from devstack.invoker import Invoker, LambdaContext
from devstack.template import load_application

# What each route sends is `targets`; which function and template route answer it comes from
# template.yaml, as in the local API.
ROUTES = ("recommend", "recommend_explain", "fold_in_50", "popularity", "history", "similar", "search", "bad_request")
FOLD_IN_LIKES = 50  # liked ids per fold-in request


@dataclass
class Summary:
    n: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: np.ndarray) -> Summary:
        ms = np.asarray(seconds) * 1000
        p50, p99, p999 = np.percentile(ms, [50, 99, 99.9])
        return cls(int(ms.size), float(p50), float(p99), float(p999), float(ms.mean()), float(ms.max()))


def targets(route: str, users: np.ndarray, movies: np.ndarray, titles: tuple[str, ...], i: int) -> tuple[str, str]:
    """(path, query) of the i-th request of a route, varied over users and movies."""
    u, m = int(users[i % users.size]), int(movies[i % movies.size])
    if route == "recommend":
        return f"/recommendations/{u}", "k=10"
    if route == "recommend_explain":
        return f"/recommendations/{u}", "k=10&explain=true"
    if route == "popularity":
        return f"/recommendations/{u}", "k=10&model=popularity"
    if route == "history":
        return f"/users/{u}/history", "k=20"
    if route == "similar":
        return f"/movies/{m}/similar", "k=10"
    if route == "search":
        word = titles[i % len(titles)].split()[0][:5]
        return "/movies", f"query={word}&limit=10"
    if route == "fold_in_50":
        return "/recommendations", ""
    return f"/recommendations/{u}", "k=0"  # bad_request: a 400 with the error body


def body(route: str, movies: np.ndarray, i: int) -> bytes:
    """The POST body of the i-th request of a route (empty for GET routes): 50 varied liked ids."""
    if route != "fold_in_50":
        return b""
    start = (i * FOLD_IN_LIKES) % max(movies.size - FOLD_IN_LIKES, 1)
    liked = movies[start : start + FOLD_IN_LIKES].tolist()
    return json.dumps({"liked": liked, "k": 10}).encode()


def measure(model_uri: str, requests: int, routes: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
    """Per route: latency summary and the raw samples (seconds)."""
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    app = load_application()
    invoker = Invoker(app, {"MODEL_URI": model_uri, "ALLOWED_ORIGIN": "*", "MODEL_REFRESH_SECONDS": "3600"})
    local = LocalApi(app, invoker, "*")
    local.handle("GET", "/model", {}, b"")  # loads the model
    artifact = invoker.modules[local.match("GET", "/model").function].runtime.model()  # type: ignore[union-attr]
    rng = np.random.default_rng(seed)
    users = rng.choice(artifact.user_ids, size=min(requests, artifact.user_ids.size), replace=False)
    movies = rng.choice(artifact.item_ids, size=min(requests, artifact.item_ids.size), replace=False)
    results: dict[str, Any] = {}
    for route in routes or ROUTES:
        events = []
        method = "POST" if route == "fold_in_50" else "GET"
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
        for i in range(requests):
            path, query = targets(route, users, movies, artifact.titles, i)
            template = local.match(method, path)
            assert template is not None, path
            events.append(api_event(template, method, path, query, headers, body(route, movies, i)))
        handler = invoker.handler(template.function)
        context = LambdaContext(template.function)
        for event in events[: min(200, requests)]:  # warm: first touches, caches, branch predictors
            handler(event, context)
        samples = np.empty(requests)
        statuses: dict[int, int] = {}
        gc.collect()
        for i, event in enumerate(events):
            started = time.perf_counter()
            response = handler(event, context)
            samples[i] = time.perf_counter() - started
            statuses[response["statusCode"]] = statuses.get(response["statusCode"], 0) + 1
        results[route] = {"summary": Summary.of(samples).__dict__, "statuses": statuses, "samples": samples}
    results["bare_scoring"] = bare_scoring(artifact, users, requests)
    results["recommend_item_item_on"] = item_item_on(artifact, handler_for_recommend(local, invoker, users), requests)
    results.update(realtime(app, model_uri, artifact, users, requests))
    return results


#: The users whose events the realtime routes read, and how many events each has.
EVENT_USERS = 1000
EVENTS_PER_USER = 10
#: Requests of the route that reads moto: its answers take tens of ms (moto serialises each item
#: attribute by attribute, about 2 ms an item), so fewer are enough for a p99.
REALTIME_REQUESTS = 2000


def realtime(app: Any, model_uri: str, artifact: Any, users: np.ndarray, requests: int) -> dict[str, Any]:
    """The recommend route with each user's events read and merged (`recsys.service.live_events`).

    `recommend_realtime`: the handler, reading `EVENTS_PER_USER` events of each of `EVENT_USERS`
    users from an events table on a moto server in this process, over HTTP (moto answers in about
    a millisecond on loopback; DynamoDB in a region takes a few). `recommend_merge_scoring`: the same
    users' answers built from their events as read (the read itself left out): the merge, the
    scoring and the answer, what the function adds to the read."""
    import boto3

    from devstack.dynamodb import create_events_table
    from devstack.s3 import moto_server
    from devstack.servers import free_port
    from recsys import service
    from recsys.events import EventLog, EventsSettings

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    rng = np.random.default_rng(1)
    chosen = users[:EVENT_USERS]
    now = int(time.time() * 1000)
    out: dict[str, Any] = {}
    with moto_server(free_port()) as endpoint:
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        table = create_events_table(client, "bench-events")
        rows = []
        for u in chosen.tolist():
            for n, m in enumerate(rng.choice(artifact.item_ids, EVENTS_PER_USER, replace=False).tolist()):
                kind = ("like", "like", "rating", "unlike")[n % 4]
                item = {"user_id": {"N": str(u)}, "movie_id": {"N": str(m)}, "kind": {"S": kind},
                        "at": {"N": str(now - 60_000 * n)}, "expires_at": {"N": str(now // 1000 + 86400)}}  # fmt: skip
                if kind == "rating":
                    item["rating"] = {"N": "4.0" if n % 8 else "2.0"}
                rows.append({"PutRequest": {"Item": item}})
        for start in range(0, len(rows), 25):
            client.batch_write_item(RequestItems={table: rows[start : start + 25]})
        invoker = Invoker(app, {"MODEL_URI": model_uri, "ALLOWED_ORIGIN": "*", "MODEL_REFRESH_SECONDS": "3600",
                                "EVENTS_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": endpoint},
                          functions=["RecommendFunction"])  # fmt: skip
        local = LocalApi(app, invoker, "*")
        handler, context, events = handler_for_recommend(local, invoker, chosen)
        statuses: dict[int, int] = {}
        realtime_seen = 0
        for event in events[: min(200, requests)]:
            handler(event, context)
        reads = min(requests, REALTIME_REQUESTS)
        samples = np.empty(reads)
        gc.collect()
        for i in range(reads):
            started = time.perf_counter()
            response = handler(events[i % len(events)], context)
            samples[i] = time.perf_counter() - started
            statuses[response["statusCode"]] = statuses.get(response["statusCode"], 0) + 1
            realtime_seen += json.loads(response["body"]).get("realtime") is True
        if realtime_seen != reads:
            raise SystemExit(f"recommend_realtime: {reads - realtime_seen} answers without the events")
        out["recommend_realtime"] = {"summary": Summary.of(samples).__dict__, "statuses": statuses, "samples": samples}
        log = EventLog(client, EventsSettings(table))
        read = {int(u): log.recent(int(u)) for u in chosen.tolist()}
    model = invoker.modules["RecommendFunction"].runtime.model()

    class AsRead:  # the events as the read returned them: what is left is the function's own work
        settings = EventsSettings(table)

        @staticmethod
        def recent(user_id: int) -> Any:
            return read[user_id]

    order = chosen.tolist()
    for u in order[: min(200, requests)]:
        service.recommendations(model, u, 10, "personalized", None, False, AsRead())  # type: ignore[arg-type]
    samples = np.empty(requests)
    gc.collect()
    for i in range(requests):
        started = time.perf_counter()
        service.recommendations(model, order[i % len(order)], 10, "personalized", None, False, AsRead())  # type: ignore[arg-type]
        samples[i] = time.perf_counter() - started
    out["recommend_merge_scoring"] = {"summary": Summary.of(samples).__dict__, "statuses": {}, "samples": samples}
    return out


def handler_for_recommend(local: LocalApi, invoker: Invoker, users: np.ndarray) -> Any:
    """The recommend route's handler and its events, as `measure` builds them."""
    template = local.match("GET", f"/recommendations/{users[0]}")
    assert template is not None
    events = [api_event(template, "GET", f"/recommendations/{u}", "k=10", {}, b"") for u in users]
    return invoker.handler(template.function), LambdaContext(template.function), events


def item_item_on(artifact: Any, recommend: Any, requests: int) -> dict[str, Any]:
    """The recommend route with the item-item side computed: when validation gave it no share
    (its sum is skipped then), as with shares 0.9 and 0.1, the costliest the blend gets."""
    handler, context, events = recommend
    served = artifact.blend_shares
    if not served[1]:
        object.__setattr__(artifact, "blend_shares", np.array([0.9, 0.1], dtype=np.float32))
    try:
        for event in events[: min(200, requests)]:
            handler(event, context)
        samples = np.empty(requests)
        gc.collect()
        for i in range(requests):
            started = time.perf_counter()
            handler(events[i % len(events)], context)
            samples[i] = time.perf_counter() - started
    finally:
        object.__setattr__(artifact, "blend_shares", served)
    return {"summary": Summary.of(samples).__dict__, "statuses": {}, "samples": samples,
            "shares": served.tolist()}  # fmt: skip


def bare_scoring(artifact: Any, users: np.ndarray, requests: int) -> dict[str, Any]:
    """The domain call alone: index lookup, scores, seen masking, top-10."""
    idx = [artifact.user_index(int(u)) for u in users]
    samples = np.empty(requests)
    for i in range(requests):
        u = idx[i % len(idx)]
        started = time.perf_counter()
        artifact.recommend(u, 10)
        samples[i] = time.perf_counter() - started
    return {"summary": Summary.of(samples).__dict__, "statuses": {}, "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="build/model-store")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="also write the results (with every sample) here")
    args = parser.parse_args(argv)
    results = measure(args.model_uri, args.requests)
    if args.json:
        samples = {route: {**r, "samples": np.asarray(r["samples"]).tolist()} for route, r in results.items()}
        args.json.write_text(json.dumps(samples))
    print(f"{'route':<20}{'n':>7}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}  statuses")
    for route, r in results.items():
        s = r["summary"]
        statuses = json.dumps(r["statuses"])
        print(f"{route:<20}{s['n']:>7}{s['p50_ms']:>9.3f}{s['p99_ms']:>9.3f}{s['p999_ms']:>10.3f}  {statuses}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
