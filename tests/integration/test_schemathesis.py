"""Schema-driven fuzzing: schemathesis generates requests from docs/openapi.json against the local API.

Every check runs but `unsupported_method`: it sends methods the document does not declare and
expects 405, while API Gateway (and so the local API) answers 403 "Missing Authentication Token"
for a method no route declares; that 403 is API Gateway's, documented in the README, and comes
with the error body and CORS through the DEFAULT_4XX gateway response.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import load_all_checks

from devstack.gateway import LocalApi, http_handler
from devstack.invoker import Invoker
from devstack.servers import start_server
from devstack.template import load_application
from scripts import openapi

pytestmark = pytest.mark.integration

load_all_checks()
schema = schemathesis.openapi.from_path(openapi.DOCUMENT)
EXCLUDED = [schemathesis.checks.CHECKS.get_one("unsupported_method")]


@pytest.fixture(scope="module")
def base_url(model_store: Path, feedback_env: dict[str, str]) -> Iterator[str]:
    app = load_application()
    local = LocalApi(app, Invoker(app, {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*", **feedback_env}), "*")
    server = start_server(http_handler(local, None, None), 0)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@schema.parametrize()
@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_every_operation_conforms_to_the_document(case, base_url: str) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(base_url=base_url, excluded_checks=EXCLUDED)
