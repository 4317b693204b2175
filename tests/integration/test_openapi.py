"""docs/openapi.json is generated from the handlers, and what the handlers answer matches it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devstack.gateway import LocalApi
from devstack.invoker import Invoker
from devstack.template import load_application
from scripts import openapi

pytestmark = pytest.mark.integration

REQUESTS = [
    # (path and query, expected status)
    ("/recommendations/1?k=5&explain=true", 200),
    ("/recommendations/1?model=popularity&genre=Action", 200),
    ("/recommendations/424242", 200),
    ("/recommendations/1?k=0", 400),
    ("/recommendations/1?k=ten", 400),
    ("/recommendations/-1", 400),
    ("/recommendations/1?model=random", 400),
    ("/model", 200),
    ("/users/1/history?k=3&offset=1", 200),
    ("/users/424242/history", 404),
    ("/users/1/history?offset=-1", 400),
    ("/users?limit=5&seed=3", 200),
    ("/users?limit=1000", 400),
    ("/movies/1/similar?k=3", 200),
    ("/movies/424242/similar", 404),
    ("/movies/x/similar", 400),
    ("/movies?query=movie%201&limit=3", 200),
    ("/movies?query=", 200),
    ("/movies?limit=0", 400),
]
JSON = {"Content-Type": "application/json"}
POSTS = [
    # (body, headers, expected status)
    ({"liked": [1, 2, 2, 424242], "k": 5, "explain": True}, JSON, 200),
    ({"liked": [1], "disliked": [3], "genre": "Action"}, JSON, 200),
    ({"liked": [424242]}, JSON, 200),
    ({"liked": []}, JSON, 200),
    ({"liked": list(range(501))}, JSON, 400),
    ({"liked": [1], "k": 101}, JSON, 400),
    ({"liked": "1"}, JSON, 400),
    ({"liked": [1]}, {"Content-Type": "text/plain"}, 400),
    ({"liked": [1], "genre": "Western"}, JSON, 404),
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(openapi.DOCUMENT.read_text())


def validate(document: dict[str, Any], route: str, status: int, body: Any, method: str = "get") -> None:
    responses = document["paths"][route][method]["responses"]
    assert str(status) in responses, f"{route} answered an undocumented {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": document["components"]})


def test_the_document_is_what_the_handlers_generate() -> None:
    assert openapi.main(["--check"]) == 0, "docs/openapi.json drifted from the handlers: run `make openapi`"


def test_the_document_covers_every_route_of_the_template(document: dict[str, Any]) -> None:
    routes = {(r.method.lower(), r.path) for r in load_application().routes if r.method != "OPTIONS"}
    assert {(m, p) for p, ops in document["paths"].items() for m in ops} == routes
    assert not any("422" in op["responses"] for ops in document["paths"].values() for op in ops.values())


def test_every_answer_matches_the_document(model_store: Path, document: dict[str, Any]) -> None:
    app = load_application()
    local = LocalApi(app, Invoker(app, {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*"}), "*")
    for target, expected in REQUESTS:
        status, _, body = local.handle("GET", target, {}, b"")
        assert status == expected, (target, status, body)
        route = local.match("GET", target.split("?")[0])
        assert route is not None
        validate(document, route.path, status, json.loads(body))
    for payload, headers, expected in POSTS:
        status, _, body = local.handle("POST", "/recommendations", headers, json.dumps(payload).encode())
        assert status == expected, (payload, status, body)
        validate(document, "/recommendations", status, json.loads(body), "post")
    request = document["paths"]["/recommendations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    for payload, _, _ in POSTS[:4]:
        jsonschema.validate(payload, {**request, "components": document["components"]})


def test_503_matches_the_document(tmp_path: Path, document: dict[str, Any]) -> None:
    app = load_application()
    local = LocalApi(app, Invoker(app, {"MODEL_URI": str(tmp_path / "empty"), "ALLOWED_ORIGIN": "*"}), "*")
    status, headers, body = local.handle("GET", "/recommendations/1", {}, b"")
    assert status == 503 and headers["Retry-After"]
    validate(document, "/recommendations/{user_id}", status, json.loads(body))
