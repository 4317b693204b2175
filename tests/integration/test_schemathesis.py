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
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
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
# unsupported_method: API Gateway answers an undeclared method with 403, not 405. missing_required_header:
# the proxy below signs every request, so a request without Authorization never reaches the gateway
# (tests/e2e/test_events_api.py and tests/unit/test_sigv4.py hold the gateway's 403 for those)
EXCLUDED = [schemathesis.checks.CHECKS.get_one(name) for name in ("unsupported_method", "missing_required_header")]


class Signed:
    """The local gateway behind a client that signs every request as the site's backend would
    (SigV4, the local stack's test credentials), so schemathesis reaches the AWS_IAM routes' functions."""

    def __init__(self, local: LocalApi) -> None:
        self.local = local

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-amz-date")}
        request = AWSRequest(method=method, url=f"http://{headers.get('Host', '127.0.0.1')}{target}", data=body,
                             headers=headers)  # fmt: skip
        SigV4Auth(Credentials("testing", "testing"), "execute-api", "us-east-1").add_auth(request)
        return self.local.handle(method, target, dict(request.headers.items()), body)


@pytest.fixture(scope="module")
def base_url(model_store: Path, feedback_env: dict[str, str], events_env: dict[str, str]) -> Iterator[str]:
    app = load_application()
    env = {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*", **feedback_env, **events_env}
    local = LocalApi(app, Invoker(app, env), "*")
    server = start_server(http_handler(Signed(local), None, None), 0)  # type: ignore[arg-type]
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@schema.parametrize()
@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_every_operation_conforms_to_the_document(case, base_url: str) -> None:  # type: ignore[no-untyped-def]
    excluded = EXCLUDED
    if case.operation.definition.raw.get("security"):
        # the proxy signed it, so no request goes unauthenticated; and an event's time must also be
        # within the retention and not ahead, and a rating come with kind "rating": rules of the
        # clock and of two fields together that a JSON schema cannot state (test_events.py has them)
        excluded = [*EXCLUDED, *(schemathesis.checks.CHECKS.get_one(n) for n in (
            "ignored_auth", "negative_data_rejection", "positive_data_acceptance"))]  # fmt: skip
    case.call_and_validate(base_url=base_url, excluded_checks=excluded)
