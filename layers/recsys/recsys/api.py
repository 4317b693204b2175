"""HTTP glue shared by the three handlers: the resolver, error mapping, CORS, the per-container model.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``:

=================================  ======  =====================================
raised                             status  code
=================================  ======  =====================================
RequestValidationError (pydantic)  400     invalid_request
InvalidRequestError                400     invalid_request
UnknownUser/Movie/GenreError      404     unknown_user / unknown_movie / unknown_genre
no such route                      404     no_route
ModelUnavailableError              503     model_unavailable (+ Retry-After)
ConfigurationError                 503     model_unavailable (+ Retry-After)
anything else                      500     internal (logged with its trace)

A 5xx body is a fixed text and the request id; the cause is logged under that id, never sent.
=================================  ======  =====================================
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import warnings
from collections.abc import Generator
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from recsys.artifact import ModelArtifact
from recsys.config import Settings
from recsys.errors import ConfigurationError, InvalidRequestError, ModelUnavailableError, NotFoundError
from recsys.schemas import ErrorBody
from recsys.store import ModelStore

logger = logging.getLogger(__name__)

# Metrics are emitted on cold start and model loads only; a warm request has none, by design, and
# powertools would warn about that on every one of them.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

NAMESPACE = "MovieRecommender"
#: What X-Ray traces besides the handler (when tracing is on): http.client, which carries the S3
#: reads of `recsys.s3` (and boto3's, through urllib3). Patching everything (powertools' default)
#: imports botocore, requests and more at cold start for calls these functions never make.
TRACED_MODULES = ("httplib",)
RETRY_AFTER_SECONDS = 5
_ERROR_CONTENT = {"application/json": {"model": ErrorBody}}
# What every route documents (docs/openapi.json is generated from these). 200 takes its schema
# from the handler's return annotation; request validation answers 400, never 422; 429 comes
# from API Gateway's throttling, through the template's THROTTLED gateway response.
RESPONSES: dict[int, dict[str, Any]] = {
    200: {"description": "OK"},
    400: {"description": "A parameter is malformed or out of range", "content": _ERROR_CONTENT},
    404: {"description": "Unknown user, movie, genre or route", "content": _ERROR_CONTENT},
    503: {
        "description": "No model is available yet; retry after the Retry-After seconds",
        "content": _ERROR_CONTENT,
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    },
    429: {"description": "Throttled by API Gateway; retry shortly", "content": _ERROR_CONTENT},
}


POST_RESPONSES: dict[int, dict[str, Any]] = {
    **RESPONSES,
    400: {
        "description": "The body is not JSON of the request schema, is over 32 KiB, or is not sent as "
        "application/json; or a value is out of range",
        "content": _ERROR_CONTENT,
    },
}
MAX_BODY_BYTES = 32 * 1024


def body_problem(event: dict[str, Any]) -> str | None:
    """Why a request body must be refused before it is parsed (content type, size), or None."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    media_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return f"the body must be sent as application/json, not {media_type or 'no content type'}"
    body = event.get("body") or ""
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode())
    if size > MAX_BODY_BYTES:
        return f"the body is over {MAX_BODY_BYTES // 1024} KiB"
    if event.get("isBase64Encoded"):
        try:
            base64.b64decode(body, validate=True).decode()
        except ValueError:  # binascii.Error and UnicodeDecodeError both are
            return "the body is not UTF-8 JSON text"
    return None


def create_tracer() -> Tracer:
    """Powertools' X-Ray tracer, patching only `TRACED_MODULES`, when tracing is on; else a tracer
    whose provider does nothing, so that the X-Ray SDK is never imported (powertools imports it for
    a disabled tracer too). On or off is powertools' own rule: inside Lambda, not in SAM's emulator,
    unless POWERTOOLS_TRACE_DISABLED."""
    if not Tracer._is_tracer_disabled():
        return Tracer(patch_modules=TRACED_MODULES)
    return Tracer(disabled=True, provider=Untraced())


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class Untraced(BaseProvider):
    """A tracing provider that records nothing (tracing off)."""

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Generator[BaseSegment]:
        yield _NoSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> Any:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Any) -> None: ...
    def patch_all(self) -> None: ...


def create_app() -> APIGatewayRestResolver:
    """A REST resolver with validation on and every error mapped to the JSON error body."""
    app = APIGatewayRestResolver(enable_validation=True)
    register_error_handlers(app)
    return app


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, request_id: str | None = None
) -> Response:
    detail = {"code": code, "message": message, **({"request_id": request_id} if request_id else {})}
    return Response(status, "application/json", json.dumps({"error": detail}), headers=headers)


# What a 5xx tells the caller: a fixed text and the request id. What went wrong (paths, bucket
# keys, AWS error codes, digests, the refused pickle global) goes to the log under that id.
UNAVAILABLE_MESSAGE = "no model is available right now; retry after the Retry-After seconds"
INTERNAL_MESSAGE = "internal error; it has been logged"


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        return error(400, "invalid_request", describe_validation(exc.errors()))

    @app.exception_handler(InvalidRequestError)
    def _bad(exc: InvalidRequestError) -> Response:
        return error(400, exc.code, str(exc))

    @app.exception_handler(NotFoundError)
    def _missing(exc: NotFoundError) -> Response:
        return error(404, exc.code, str(exc))

    @app.exception_handler(ModelUnavailableError)
    @app.exception_handler(ConfigurationError)
    def _unavailable(exc: ModelUnavailableError | ConfigurationError) -> Response:
        request_id = _request_id(app)
        logger.error("serving unavailable (request %s): %s: %s", request_id, exc.code, exc)
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error(503, "model_unavailable", UNAVAILABLE_MESSAGE, retry, request_id)

    @app.not_found
    def _no_route(exc: Exception) -> Response:
        return error(404, "no_route", f"no route {app.current_event.http_method} {app.current_event.path}")

    @app.exception_handler(Exception)
    def _internal(exc: Exception) -> Response:
        request_id = _request_id(app)
        logger.exception("unhandled error (request %s)", request_id)
        return error(500, "internal", INTERNAL_MESSAGE, request_id=request_id)


def _request_id(app: APIGatewayRestResolver) -> str:
    """API Gateway's id of the request (what its own access log and x-amzn-RequestId carry)."""
    try:
        return str(app.current_event.request_context.request_id or "unknown")
    except (AttributeError, KeyError, TypeError):
        return "unknown"


def describe_validation(errors: Any) -> str:
    """One readable sentence per pydantic error: where, and what was wrong."""
    parts = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        where = f"{loc[0]} parameter {'.'.join(loc[1:])}" if len(loc) > 1 else ".".join(loc) or "request"
        where = where.replace("path parameter", "path segment")
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class Runtime:
    """What one container keeps between requests: its settings and its model store.

    Nothing is read at construction; the first request reads the settings and loads the model (only
    `parts` of it: see `recsys.artifact.FUNCTION_PARTS`), so a bad setting or an unreachable S3
    becomes a 503 instead of a crashed init.
    """

    def __init__(self, metrics: Any = None, parts: tuple[str, ...] | None = None) -> None:
        self.metrics = metrics
        self.parts = parts
        self._settings: Settings | None = None
        self._store: ModelStore | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def store(self) -> ModelStore:
        if self._store is None:
            self._store = ModelStore(self.settings, on_load=self._loaded, parts=self.parts)
        return self._store

    def model(self) -> ModelArtifact:
        return self.store.get()

    def resolve(self, app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Route the event (a CORS preflight is answered here), then add the CORS headers."""
        method = event.get("httpMethod")
        problem = body_problem(event) if method == "POST" else None
        if method == "OPTIONS":
            response = preflight()
        elif problem is not None:
            response = rejected(problem)
        else:
            response = app.resolve(event, context)
        add_cors(response, event, self._allowed_origin())
        return response

    def _allowed_origin(self) -> str | None:
        try:
            return self.settings.allowed_origin
        except ConfigurationError:
            return None

    # -- SnapStart (see `register_snapstart`) ------------------------------------------------

    def before_snapshot(self) -> None:
        """Load the model during init, so that the snapshot holds it.

        A failure is logged, never raised: the init goes on, and the first request after a restore
        loads the model lazily, as it does without SnapStart.
        """
        try:
            self.model()
        except Exception:  # a crashed init would fail every restore of this version
            logger.warning("no model before the snapshot; the first request will load it", exc_info=True)

    def after_restore(self) -> None:
        """Start fresh from a snapshot: the next request checks the pointer (the snapshot may be
        days old), on a new S3 client, with no failure remembered from before the snapshot."""
        if self._store is not None:
            self._store.restored()

    def _loaded(self, model: ModelArtifact, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name="ModelLoadMs", unit=MetricUnit.Milliseconds, value=seconds * 1000)
            self.metrics.add_metadata(key="model_version", value=model.version)


def register_snapstart(runtime: Runtime) -> None:
    """Register `runtime`'s SnapStart hooks with Lambda's runtime module, where there is one.

    Lambda's Python runtimes from 3.12 ship ``snapshot_restore_py``; it exists nowhere else, so it
    is imported optionally. The hooks run only for a function with SnapStart on.
    """
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot  # type: ignore[import-not-found]
    except ImportError:
        return
    register_before_snapshot(runtime.before_snapshot)
    register_after_restore(runtime.after_restore)


PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET,POST,OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}


def preflight() -> dict[str, Any]:
    """The answer to a CORS preflight; `add_cors` then allows the origin only if it is the allowed one."""
    headers = {k: [v] for k, v in PREFLIGHT_HEADERS.items()}
    return {"statusCode": 204, "multiValueHeaders": headers, "body": "", "isBase64Encoded": False}


def rejected(message: str) -> dict[str, Any]:
    """A 400 answered before routing, in the usual error body."""
    body = {"error": {"code": "invalid_request", "message": message}}
    headers = {"Content-Type": ["application/json"]}
    return {"statusCode": 400, "multiValueHeaders": headers, "body": json.dumps(body), "isBase64Encoded": False}


def add_cors(response: dict[str, Any], event: dict[str, Any], allowed: str | None) -> None:
    """Echo the allowed origin (or ``*``) on every response, errors included; another origin gets none."""
    if not allowed:
        return
    headers = response.setdefault("multiValueHeaders", {})
    if allowed == "*":
        headers["Access-Control-Allow-Origin"] = ["*"]
        return
    request_headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if request_headers.get("origin") == allowed:
        headers["Access-Control-Allow-Origin"] = [allowed]
    headers["Vary"] = ["Origin"]


__all__ = [
    "POST_RESPONSES", "RESPONSES", "ErrorBody", "NAMESPACE", "Runtime", "add_cors", "create_app", "create_tracer",
    "error", "preflight", "register_snapstart",
]  # fmt: skip
