"""recsys.routing and recsys.telemetry: what powertools and pydantic did for the handlers, now ours."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pytest

from recsys import api, telemetry
from recsys.routing import Invalid, Query, check_object
from recsys.schemas import K, Taste, TasteBody, UserId
from recsys.tracing import Untraced

Flag = Annotated[bool, Query(description="a flag")]
Choice = Annotated[Literal["a", "b"], Query()]
Word = Annotated[str | None, Query(max_length=3)]


@pytest.fixture
def app() -> api.App:
    app = api.App()

    @app.get("/things/{thing_id}")
    def thing(thing_id: UserId, k: K = 10, flag: Flag = False, choice: Choice = "a", word: Word = None) -> dict:
        return {"thing_id": thing_id, "k": k, "flag": flag, "choice": choice, "word": word}

    @app.post("/tastes")
    def taste(taste: TasteBody) -> dict:
        return taste._asdict()

    return app


def get(app: api.App, path: str, query: dict[str, list[str]] | None = None) -> tuple[int, Any]:
    event = {"httpMethod": "GET", "path": path, "multiValueQueryStringParameters": query,
             "queryStringParameters": {k: v[-1] for k, v in (query or {}).items()} or None}  # fmt: skip
    response = app.resolve(event)
    return response["statusCode"], json.loads(response["body"])


def test_a_route_gets_its_parameters_checked_and_typed(app: api.App) -> None:
    # GIVEN text as API Gateway passes it WHEN routed THEN each parameter arrives as its type
    status, body = get(app, "/things/7", {"k": ["3"], "flag": ["TRUE"], "choice": ["b"], "word": ["abc"]})
    assert (status, body) == (200, {"thing_id": 7, "k": 3, "flag": True, "choice": "b", "word": "abc"})
    # AND absent ones take their defaults, a repeated one its last value (API Gateway's single-value map)
    assert get(app, "/things/7", {"k": ["1", "2"]})[1] == {"thing_id": 7, "k": 2, "flag": False, "choice": "a",
                                                          "word": None}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "query", "needle"),
    [
        ("/things/x", None, "path segment thing_id: Input should be a valid integer"),
        ("/things/-1", None, "greater than or equal to 0"),
        ("/things/2147483648", None, "less than or equal to 2147483647"),
        ("/things/1", {"k": ["0"]}, "query parameter k: Input should be greater than or equal to 1"),
        ("/things/1", {"k": ["1.0"]}, "query parameter k: Input should be a valid integer"),
        ("/things/1", {"k": ["9" * 25]}, "valid integer"),
        ("/things/1", {"flag": ["maybe"]}, "query parameter flag: Input should be a valid boolean"),
        ("/things/1", {"choice": ["c"]}, "Input should be 'a' or 'b'"),
        ("/things/1", {"word": ["abcd"]}, "at most 3 characters"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(app: api.App, path: str, query: Any, needle: str) -> None:
    status, body = get(app, path, query)
    assert status == 400 and body["error"]["code"] == "invalid_request" and needle in body["error"]["message"]


def test_no_route_and_no_method_are_404s(app: api.App) -> None:
    assert get(app, "/things")[0] == 404 and get(app, "/things/1/more")[0] == 404
    response = app.resolve({"httpMethod": "DELETE", "path": "/things/1"})
    assert response["statusCode"] == 404 and "no route DELETE /things/1" in response["body"]


def test_a_body_is_checked_field_by_field_into_its_tuple() -> None:
    parsed = check_object({"liked": [1, 2.0], "k": 5}, Taste, ["body"])
    assert parsed == Taste(liked=(1, 2), disliked=(), k=5, genre=None, explain=False)
    with pytest.raises(Invalid, match=r"body parameter liked\.1: Input should be a valid integer"):
        check_object({"liked": [1, True]}, Taste, ["body"])
    with pytest.raises(Invalid, match="body parameter liked: Field required"):
        check_object({}, Taste, ["body"])
    with pytest.raises(Invalid, match="body parameter user: Extra inputs are not permitted"):
        check_object({"liked": [], "user": 1}, Taste, ["body"])


def test_an_unknown_annotation_is_an_error_of_the_route_not_of_the_request() -> None:
    # a route declared with a type the checks lack answers 500 (logged), never a 400 blaming the caller
    app = api.App()

    @app.get("/odd")
    def odd(x: Annotated[bytes, Query()] = b"") -> dict:
        return {}

    response = app.resolve({"httpMethod": "GET", "path": "/odd", "queryStringParameters": {"x": "1"}})
    assert response["statusCode"] == 500 and json.loads(response["body"])["error"]["code"] == "internal"


def test_metrics_are_one_emf_line_per_invocation_and_cold_start_counts_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    # GIVEN metrics on, and a handler that adds a metric, never invoked yet
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)  # the template's, when a stack ran before
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "svc")
    metrics = telemetry.Metrics(namespace="Test")

    @telemetry.instrument(Untraced(), metrics)
    def handler(event: Any, context: Any) -> str:
        metrics.add_metric("LoadMs", "Milliseconds", 12.5)
        metrics.add_metadata("model_version", "v1")
        return "ok"

    # WHEN it is invoked twice
    assert handler({}, lambda_context) == "ok" and handler({}, lambda_context) == "ok"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # THEN one ColdStart, under the function and service, then the metric with its metadata once per invocation
    assert {line["service"] for line in lines} == {"svc"}
    cold = [line for line in lines if "ColdStart" in line]
    assert len(cold) == 1 and cold[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["function_name", "service"]]
    loads = [line for line in lines if "LoadMs" in line]
    assert [line["LoadMs"] for line in loads] == [12.5, 12.5] and all(line["model_version"] == "v1" for line in loads)
    assert loads[0]["_aws"]["CloudWatchMetrics"][0] == {
        "Namespace": "Test", "Dimensions": [["service"]], "Metrics": [{"Name": "LoadMs", "Unit": "Milliseconds"}]
    }  # fmt: skip
    # AND POWERTOOLS_METRICS_DISABLED silences them
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    handler({}, lambda_context)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("status", "body", "reason"), [
    (200, '{"model": "popularity", "fallback": "unknown_user", "items": []}', "unknown_user"),
    (200, '{"model": "personalized", "fallback": null, "items": [{"title": "\\"fallback\\": \\"x\\""}]}', None),
    (503, '{"error": {"code": "model_unavailable", "message": "..."}}', "model_unavailable"),
    (400, '{"error": {"code": "invalid_parameter", "message": "\\"fallback\\": \\"x\\""}}', None),
])  # fmt: skip
def test_a_fallback_is_read_from_the_answer_and_never_from_a_title(status: int, body: str, reason: str | None) -> None:
    # GIVEN answers as the routes write them (json.dumps' separators), a title quoting the key
    # WHEN the metrics ask why it fell back THEN only the answer's own key counts
    assert api.fallback_of(status, body) == reason
    assert json.loads(body)  # each is the JSON a route writes


def test_metrics_name_a_route_by_its_template_never_its_path() -> None:
    app = api.App()

    @app.get("/users/{user_id}/history")
    def history(user_id: UserId) -> dict:
        return {}

    assert app.route_of({"httpMethod": "GET", "path": "/users/196/history"}) == "GET /users/{user_id}/history"
    assert app.route_of({"httpMethod": "POST", "path": "/users/196/history"}) == "other"
    assert app.route_of({"httpMethod": "GET", "path": "/nowhere/196"}) == "other"
    assert app.route_of({"httpMethod": "OPTIONS", "path": "/users/196/history"}) == "OPTIONS"
