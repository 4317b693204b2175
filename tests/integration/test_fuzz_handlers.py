"""Handler fuzzing: hypothesis builds odd API Gateway events per route; every answer is a 2xx or a 4xx
with the error body, never an exception or a 5xx."""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.invoker import Invoker, LambdaContext
from devstack.template import load_application

pytestmark = pytest.mark.integration

APP = load_application()
ROUTES = [r for r in APP.routes if r.method in ("GET", "DELETE")]
PARAMS = ["k", "model", "genre", "explain", "offset", "limit", "seed", "query", "user_id", "K", ""]

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-1", "1e3", "0x10", "10.5", " 5", "5 ", "٣", "NaN", "", "9" * 400, "1_000"]),
)
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
values = st.one_of(numbers, texts, st.sampled_from(["personalized", "popularity", "true", "false", "Comedy"]))
visitors = st.one_of(
    st.uuids(version=4).map(str),
    st.uuids(version=1).map(str),
    st.uuids(version=4).map(lambda u: str(u).upper()),
    st.sampled_from(["", "x", "00000000-0000-4000-8000-00000000000", "0" * 37]),
)
segments = st.one_of(numbers, texts, st.sampled_from(["..", ".", "%2F", "a/b", "%00", "\x00", "1/similar"]))


@st.composite
def events(draw: st.DrawFn, route: Any) -> dict[str, Any]:
    segment = draw(segments)
    quoted = urllib.parse.quote(segment, safe="") if draw(st.booleans()) else segment
    if "{visitor_id}" in route.path and draw(st.booleans()):
        segment = quoted = draw(visitors)
    path = route.path.replace("{user_id}", quoted).replace("{movie_id}", quoted).replace("{visitor_id}", quoted)
    multi = draw(st.dictionaries(st.sampled_from(PARAMS), st.lists(values, min_size=1, max_size=3), max_size=5))
    body = draw(st.one_of(st.none(), texts, st.binary(max_size=30).map(lambda b: b.hex())))
    headers = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["Origin", "origin", "Accept", "X-Odd"]),
                                                        texts, max_size=3)))  # fmt: skip
    name = next((n for n in ("user_id", "movie_id", "visitor_id") if f"{{{n}}}" in route.path), "")
    return _event(route, route.method, path, headers, multi, {name: segment} if "{" in route.path else None, body,
                  draw(st.booleans()) if body else False)  # fmt: skip


def _event(
    route: Any,
    method: str,
    path: str,
    headers: dict[str, str] | None,
    query: dict[str, list[str]],
    path_parameters: dict[str, str] | None,
    body: str | None,
    is_base64: bool,
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as the gateway would pass it."""
    return {
        "resource": route.path, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None, "pathParameters": path_parameters, "stageVariables": None,
        "requestContext": {"resourcePath": route.path, "httpMethod": method, "stage": "Prod", "requestId": "fuzz",
                           "path": f"/Prod{path}", "identity": {"sourceIp": "127.0.0.1"}},
        "body": body, "isBase64Encoded": is_base64,
    }  # fmt: skip


def _answer_is_clear(invoker: Invoker, route: Any, event: dict[str, Any], seen: dict[int, int]) -> dict[str, Any]:
    """Invoke the route's function with `event`; assert a 2xx, or a 4xx with the error body. The body."""
    response = invoker.handler(route.function)(event, LambdaContext(route.function))
    status = response["statusCode"]
    seen[status] = seen.get(status, 0) + 1
    body: dict[str, Any] = json.loads(response["body"])
    assert 200 <= status < 300 or 400 <= status < 500, (status, body, event["path"], (event["body"] or "")[:200])
    if status >= 400:
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    else:
        assert body.get("model_version") or body.get("visitor_id") or "user_id" in body
    return body


@pytest.fixture(scope="module")
def invoker(model_store: Path, feedback_env: dict[str, str], events_env: dict[str, str]) -> Invoker:
    return Invoker(APP, {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*", **feedback_env, **events_env})


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.path)
def test_odd_events_get_a_2xx_or_a_clear_4xx(invoker: Invoker, route: Any) -> None:
    seen: dict[int, int] = {}

    @settings(max_examples=1000, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(event=events(route))
    def check(event: dict[str, Any]) -> None:
        _answer_is_clear(invoker, route, event, seen)

    check()
    assert sum(seen.values()) >= 1000
    if route.path != "/model":  # the one route without parameters always answers 200
        assert any(400 <= s < 500 for s in seen), seen  # the generator does reach the error paths


POST_ROUTES = [r for r in APP.routes if r.method == "POST"]
FIELDS = ["liked", "disliked", "k", "genre", "explain", "user_id", "visitor_id", "like", "unlike", "events",
          "movie_id", "kind", "at", "rating", ""]  # fmt: skip
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False), st.text(alphabet=st.characters(), max_size=20),
    ),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5),
    max_leaves=30,
)  # fmt: skip
tastes = st.fixed_dictionaries(
    {"liked": st.lists(st.integers(min_value=-5, max_value=2000), max_size=8)},
    optional={"disliked": st.lists(st.integers(min_value=-5, max_value=2000), max_size=4),
              "k": st.integers(min_value=-2, max_value=120), "genre": st.sampled_from(["Comedy", "comedy", "", "X"]),
              "explain": st.booleans()},
)  # fmt: skip
hostile = st.one_of(
    st.integers(min_value=4000, max_value=6000).map(lambda n: '{"liked": [' + "9" * n + "]}"),
    st.integers(min_value=9, max_value=12_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=9, max_value=5_000).map(lambda n: '{"liked": ' + "[" * n + "1" + "]" * n + "}"),
    st.sampled_from(['{"liked": [1], "liked": [2]}', '{"liked": [1], "genre": "\\ud800"}', '{"liked": [NaN]}',
                     '{"liked": [Infinity]}', '{"liked": [1e400]}', '{"liked": [1]}\x00', "\ufeff{}", "nul"]),
)  # fmt: skip
ids = st.lists(st.integers(min_value=-5, max_value=2000), max_size=6)
feedbacks = st.fixed_dictionaries({"visitor_id": visitors}, optional={"like": ids, "unlike": ids})
_NOW = dt.datetime.now(dt.UTC)
times = st.one_of(
    st.integers(min_value=-400 * 86400, max_value=3600).map(lambda s: (_NOW + dt.timedelta(seconds=s)).isoformat()),
    st.sampled_from(["2026-12-06T13:00:00", "yesterday", "", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59+14:00"]),
)
user_events = st.fixed_dictionaries(
    {"movie_id": st.integers(min_value=-5, max_value=2000), "kind": st.sampled_from(["like", "unlike", "rating", "x"]),
     "at": times},
    optional={"rating": st.one_of(st.none(), st.floats(min_value=-1, max_value=7, allow_nan=False))},
)  # fmt: skip
site_events = st.fixed_dictionaries(
    {"user_id": st.integers(min_value=-5, max_value=2**31), "events": st.lists(user_events, max_size=4)}
)
bodies = st.one_of(
    tastes.map(json.dumps),
    feedbacks.map(json.dumps),
    site_events.map(json.dumps),
    json_values.map(json.dumps),
    hostile,
    st.text(alphabet=st.characters(), max_size=60),
)


@st.composite
def post_events(draw: st.DrawFn, route: Any) -> dict[str, Any]:
    text = draw(bodies)
    encoded = draw(st.integers(0, 3))  # 0, 1: as text; 2: base64 of UTF-8; 3: base64 of arbitrary bytes
    body, is_base64 = text, False
    if encoded == 2:
        body, is_base64 = base64.b64encode(text.encode(errors="surrogatepass")).decode(), True
    elif encoded == 3:
        body, is_base64 = draw(st.one_of(st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
                                         st.text(max_size=20))), True  # fmt: skip
    content_type = draw(st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                                         "text/plain", "application/x-www-form-urlencoded", None]))  # fmt: skip
    headers = {"Content-Type": content_type} if content_type else {}
    return _event(route, "POST", route.path, headers, {}, None, body, is_base64)


@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda r: r.path)
def test_odd_bodies_get_a_2xx_or_a_clear_4xx(invoker: Invoker, route: Any) -> None:
    seen: dict[int, int] = {}

    @settings(max_examples=1500, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(event=post_events(route))
    def check(event: dict[str, Any]) -> None:
        body = _answer_is_clear(invoker, route, event, seen)
        assert "error" in body or isinstance(body.get("items", body.get("liked", body.get("stored"))), list)

    check()
    assert sum(seen.values()) >= 1500
    assert any(200 <= s < 300 for s in seen) and any(400 <= s < 500 for s in seen), seen  # both paths reached
