"""CORS: only the configured website origin is allowed, on every kind of response."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devstack.gateway import LocalApi
from devstack.invoker import Invoker
from devstack.template import TEMPLATE, TemplateLoader, load_application

pytestmark = pytest.mark.integration

SITE = "https://d111111abcdef8.cloudfront.net"
OTHER = "https://evil.example"


def api(model_uri: str, allowed: str = SITE) -> LocalApi:
    app = load_application()
    return LocalApi(app, Invoker(app, {"MODEL_URI": model_uri, "ALLOWED_ORIGIN": allowed}), allowed)


@pytest.fixture(scope="module")
def local(model_store: Path) -> LocalApi:
    return api(str(model_store))


@pytest.mark.parametrize("path", ["/recommendations/1", "/model", "/users/1/history", "/users", "/movies/1/similar",
                                  "/movies"])  # fmt: skip
def test_preflight_from_the_site_gets_exactly_its_origin(local: LocalApi, path: str) -> None:
    status, headers, body = local.handle("OPTIONS", path, {"Origin": SITE, "Access-Control-Request-Method": "GET"}, b"")
    assert status == 204 and body == b""
    assert headers["Access-Control-Allow-Origin"] == SITE
    assert "GET" in headers["Access-Control-Allow-Methods"].split(",")
    assert headers["Vary"] == "Origin"


def test_preflight_from_another_origin_is_not_allowed(local: LocalApi) -> None:
    status, headers, _ = local.handle("OPTIONS", "/recommendations/1", {"Origin": OTHER}, b"")
    assert status == 204
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/recommendations/1", 200), ("/recommendations/1?k=0", 400), ("/users/424242/history", 404),
     ("/movies/x/similar", 400)],
)  # fmt: skip
def test_answers_and_errors_carry_the_site_origin_only(local: LocalApi, target: str, expected: int) -> None:
    status, headers, _ = local.handle("GET", target, {"Origin": SITE}, b"")
    assert status == expected and headers["Access-Control-Allow-Origin"] == SITE
    status, headers, _ = local.handle("GET", target, {"origin": OTHER}, b"")
    assert status == expected and "Access-Control-Allow-Origin" not in headers


def test_503_carries_the_site_origin(tmp_path: Path) -> None:
    status, headers, _ = api(str(tmp_path / "empty")).handle("GET", "/recommendations/1", {"Origin": SITE}, b"")
    assert status == 503 and headers["Access-Control-Allow-Origin"] == SITE and headers["Retry-After"]


def test_local_development_allows_any_origin(model_store: Path) -> None:
    _, headers, _ = api(str(model_store), "*").handle("GET", "/model", {"Origin": OTHER}, b"")
    assert headers["Access-Control-Allow-Origin"] == "*"


def _origins(tag: object) -> tuple[object, ...]:
    """An ``!If [cond, a, b]`` of origins as (cond, a, b) with API Gateway's quotes and Ref/Sub forms evened out."""
    condition, *branches = tag.value  # type: ignore[attr-defined]

    def text(branch: object) -> str:
        kind, value = branch.tag, branch.value  # type: ignore[attr-defined]
        return f"${{{value}}}" if kind == "Ref" else str(value).strip("'")

    return (condition, *map(text, branches))


def test_gateway_responses_4xx_5xx_and_throttled_carry_the_same_origin_as_the_functions() -> None:
    doc = yaml.load(TEMPLATE.read_text(), Loader=TemplateLoader)  # noqa: S506 - SafeLoader subclass
    api_props = doc["Resources"]["Api"]["Properties"]
    assert "Cors" not in api_props  # SAM's mock preflight would echo the origin to anyone
    functions = _origins(doc["Globals"]["Function"]["Environment"]["Variables"]["ALLOWED_ORIGIN"])
    assert functions[1] == "https://${WebsiteDistribution.DomainName}"
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED"):
        header = api_props["GatewayResponses"][kind]["ResponseParameters"]["Headers"]["Access-Control-Allow-Origin"]
        assert _origins(header) == functions, kind
    throttled = api_props["GatewayResponses"]["THROTTLED"]
    assert throttled["StatusCode"] == "429" and "Retry-After" in throttled["ResponseParameters"]["Headers"]
