"""Handler fuzzing: hypothesis builds odd API Gateway events per route; every answer is a 2xx or a 4xx
with the error body, never an exception or a 5xx."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.localstack import Invoker, LambdaContext, load_application

pytestmark = pytest.mark.integration

APP = load_application()
ROUTES = [r for r in APP.routes if r.method == "GET"]
PARAMS = ["k", "model", "genre", "explain", "offset", "limit", "seed", "query", "user_id", "K", ""]

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-1", "1e3", "0x10", "10.5", " 5", "5 ", "٣", "NaN", "", "9" * 400, "1_000"]),
)
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
values = st.one_of(numbers, texts, st.sampled_from(["personalized", "popularity", "true", "false", "Comedy"]))
segments = st.one_of(numbers, texts, st.sampled_from(["..", ".", "%2F", "a/b", "%00", "\x00", "1/similar"]))


@st.composite
def events(draw: st.DrawFn, route: Any) -> dict[str, Any]:
    segment = draw(segments)
    quoted = urllib.parse.quote(segment, safe="") if draw(st.booleans()) else segment
    path = route.path.replace("{user_id}", quoted).replace("{movie_id}", quoted)
    multi = draw(st.dictionaries(st.sampled_from(PARAMS), st.lists(values, min_size=1, max_size=3), max_size=5))
    body = draw(st.one_of(st.none(), texts, st.binary(max_size=30).map(lambda b: b.hex())))
    headers = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["Origin", "origin", "Accept", "X-Odd"]),
                                                        texts, max_size=3)))  # fmt: skip
    name = "user_id" if "user_id" in route.path else "movie_id"
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": {name: segment} if "{" in route.path else None,
        "stageVariables": None,
        "requestContext": {"resourcePath": route.path, "httpMethod": "GET", "stage": "Prod", "requestId": "fuzz",
                           "path": f"/Prod{path}", "identity": {"sourceIp": "127.0.0.1"}},
        "body": body,
        "isBase64Encoded": draw(st.booleans()) if body else False,
    }  # fmt: skip


@pytest.fixture(scope="module")
def invoker(model_store: Path) -> Invoker:
    return Invoker(APP, {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*"})


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.path)
def test_odd_events_get_a_2xx_or_a_clear_4xx(invoker: Invoker, route: Any) -> None:
    seen: dict[int, int] = {}

    @settings(max_examples=1000, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(event=events(route))
    def check(event: dict[str, Any]) -> None:
        response = invoker.handler(route.function)(event, LambdaContext(route.function))
        status = response["statusCode"]
        seen[status] = seen.get(status, 0) + 1
        body = json.loads(response["body"])
        assert 200 <= status < 300 or 400 <= status < 500, (status, body, event["path"])
        if status >= 400:
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
            assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        else:
            assert body["model_version"]

    check()
    assert sum(seen.values()) >= 1000
    if route.path != "/model":  # the one route without parameters always answers 200
        assert any(400 <= s < 500 for s in seen), seen  # the generator does reach the error paths
