"""HTTP glue shared by the handlers: the resolver, the request body, the error map, CORS.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``, mapped in one place
(`error_response`) from the exception types of `recsys.errors`:

=================================  ======  =====================================
raised                             status  code
=================================  ======  =====================================
RequestValidationError (pydantic)  400     invalid_request
InvalidRequestError                400     invalid_request (the body checks below raise it too)
UnknownUser/Movie/GenreError       404     unknown_user / unknown_movie / unknown_genre
no such route                      404     no_route
ModelUnavailableError              503     model_unavailable (+ Retry-After)
ConfigurationError                 503     model_unavailable (+ Retry-After)
anything else                      500     internal (logged with its trace)
=================================  ======  =====================================

A 5xx body is a fixed text and the request id; the cause is logged under that id, never sent.

A POST body is read by this module, not by powertools' default: it must come as
``application/json``, hold at most `MAX_BODY_BYTES`, and be JSON whose nesting, numbers and keys
stay within `parse_body`'s limits. Powertools validates a body before any middleware runs, so the
checks that need the raw event (content type, size, base64) run just before routing (`handle`),
and the JSON parser is the resolver's own deserializer; both raise `InvalidRequestError`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import warnings
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
)

from recsys.errors import ConfigurationError, InvalidRequestError, ModelUnavailableError, NotFoundError, RecsysError
from recsys.schemas import ErrorBody

logger = logging.getLogger(__name__)

# Metrics are emitted on cold start and model loads only; a warm request has none, by design, and
# powertools would warn about that on every one of them.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

NAMESPACE = "MovieRecommender"
RETRY_AFTER_SECONDS = 5
_ERROR_CONTENT: dict[str, OpenAPIResponseContentModel | OpenAPIResponseContentSchema] = {
    "application/json": {"model": ErrorBody}
}
# What every route documents (docs/openapi.json is generated from these). 200 takes its schema
# from the handler's return annotation; request validation answers 400, never 422; 429 comes
# from API Gateway's throttling, through the template's THROTTLED gateway response.
RESPONSES: dict[int, OpenAPIResponse] = {
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


POST_RESPONSES: dict[int, OpenAPIResponse] = {
    **RESPONSES,
    400: {
        "description": "The body is not JSON of the request schema, is over 32 KiB, or is not sent as "
        "application/json; or a value is out of range",
        "content": _ERROR_CONTENT,
    },
}
MAX_BODY_BYTES = 32 * 1024


#: How deep a POST body may nest (the request schema needs 2), and how many digits a number may have.
MAX_BODY_DEPTH = 8
MAX_NUMBER_DIGITS = 20


def create_app() -> APIGatewayRestResolver:
    """A REST resolver with validation on, our body parser, and every error mapped to the JSON error body."""
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_body)
    register_error_handlers(app)
    return app


# -- the request body ------------------------------------------------------------------------


def check_body(event: dict[str, Any]) -> dict[str, Any]:
    """The POST `event` with its media type spelled as the resolver expects (``application/json``);
    InvalidRequestError when the body is not sent as JSON, is too large, or is not base64 of UTF-8
    text where API Gateway says it is base64."""
    headers = {str(k): v for k, v in (event.get("headers") or {}).items()}
    name = next((k for k in headers if k.lower() == "content-type"), "Content-Type")
    media_type = str(headers.get(name) or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise InvalidRequestError(f"the body must be sent as application/json, not {media_type or 'no content type'}")
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise InvalidRequestError("the body is not text")
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode(errors="surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise InvalidRequestError(f"the body is over {MAX_BODY_BYTES // 1024} KiB")
    if event.get("isBase64Encoded"):
        try:
            base64.b64decode(body, validate=True).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text
            raise InvalidRequestError("the body is not base64 of UTF-8 JSON text") from None
    # media types are case-insensitive, and charset is all a JSON body may add; powertools reads
    # the header case-sensitively and would call "APPLICATION/JSON" unsupported
    return {**event, "headers": {**headers, name: "application/json"}}


def parse_body(text: str) -> Any:
    """The JSON value of a request body, within limits; InvalidRequestError for anything else.

    Refused: text that is not JSON, NaN and Infinity, a number of more than `MAX_NUMBER_DIGITS`
    digits (Python's int parsing would raise past 4,300, and no field needs more than 20), nesting
    deeper than `MAX_BODY_DEPTH` (the parser would hit the recursion limit near 1,000), a key
    repeated in one object (which one would win is the parser's choice), and lone surrogates
    (no UTF-8 text holds them).
    """
    if len(text) > MAX_BODY_BYTES:
        raise InvalidRequestError(f"the body is over {MAX_BODY_BYTES // 1024} KiB")
    try:
        value = json.loads(
            text, parse_int=_int, parse_float=_float, parse_constant=_constant, object_pairs_hook=_unique_keys
        )
    except InvalidRequestError:
        raise
    except RecursionError:
        raise InvalidRequestError(f"the body nests deeper than {MAX_BODY_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError among them
        raise InvalidRequestError(f"the body is not JSON: {getattr(exc, 'msg', exc)}") from None
    if _depth_over(value, MAX_BODY_DEPTH):
        raise InvalidRequestError(f"the body nests deeper than {MAX_BODY_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(text):  # rare: only then is the parsed value walked for a lone one
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidRequestError("the body holds a lone surrogate, which is not Unicode text") from None
    return value


#: A surrogate, escaped (\uD800) or raw: only a body holding one can hold a lone one (a pair is fine).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise InvalidRequestError(f"the body holds a number of more than {MAX_NUMBER_DIGITS} digits")
    return int(digits)


def _float(text: str) -> float:
    if len(text) > 64:
        raise InvalidRequestError("the body holds a number that is too long")
    return float(text)


def _constant(name: str) -> Any:
    raise InvalidRequestError(f"the body holds {name}, which is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise InvalidRequestError("the body repeats a key in one object")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
    return False


# -- routing ---------------------------------------------------------------------------------


def handle(
    app: APIGatewayRestResolver, event: dict[str, Any], context: Any, allowed_origin: str | None
) -> dict[str, Any]:
    """The response to `event`: a CORS preflight is answered here, a POST body is checked, the rest
    is routed by `app`; every response gets the CORS headers of `allowed_origin`."""
    method = event.get("httpMethod")
    if method == "OPTIONS":
        response = preflight()
    else:
        try:
            if method == "POST":
                event = check_body(event)
        except InvalidRequestError as exc:
            response = as_proxy_response(error_response(exc, None))
        else:
            response = app.resolve(event, context)
    add_cors(response, event, allowed_origin)
    return response


# -- errors ----------------------------------------------------------------------------------


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, request_id: str | None = None
) -> Response[str]:
    detail = {"code": code, "message": message, **({"request_id": request_id} if request_id else {})}
    return Response(status, "application/json", json.dumps({"error": detail}), headers=headers)


# What a 5xx tells the caller: a fixed text and the request id. What went wrong (paths, bucket
# keys, AWS error codes, digests, the refused pickle global) goes to the log under that id.
UNAVAILABLE_MESSAGE = "no model is available right now; retry after the Retry-After seconds"
INTERNAL_MESSAGE = "internal error; it has been logged"


def error_response(exc: Exception, request_id: str | None) -> Response[str]:
    """The one map from an exception to its error response (the table in this module's docstring)."""
    if isinstance(exc, RequestValidationError):
        return error(400, "invalid_request", describe_validation(exc.errors()))
    if isinstance(exc, RequestUnsupportedContentType):  # `check_body` lets none through; kept a 400 all the same
        return error(400, "invalid_request", "the body must be sent as application/json")
    if isinstance(exc, InvalidRequestError):
        return error(400, exc.code, str(exc))
    if isinstance(exc, NotFoundError):
        return error(404, exc.code, str(exc))
    if isinstance(exc, (ModelUnavailableError, ConfigurationError)):
        logger.error("serving unavailable (request %s): %s: %s", request_id, exc.code, exc)
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error(503, "model_unavailable", UNAVAILABLE_MESSAGE, retry, request_id)
    logger.error("unhandled error (request %s)", request_id, exc_info=exc)
    return error(500, "internal", INTERNAL_MESSAGE, request_id=request_id)


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler([RequestValidationError, RequestUnsupportedContentType, RecsysError, Exception])  # type: ignore[untyped-decorator]  # powertools leaves it unannotated
    def _mapped(exc: Exception) -> Response[str]:
        return error_response(exc, _request_id(app))

    @app.not_found
    def _no_route(exc: Exception) -> Response[str]:
        return error(404, "no_route", f"no route {app.current_event.http_method} {app.current_event.path}")


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


PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET,POST,OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}


def preflight() -> dict[str, Any]:
    """The answer to a CORS preflight; `add_cors` then allows the origin only if it is the allowed one."""
    headers = {k: [v] for k, v in PREFLIGHT_HEADERS.items()}
    return {"statusCode": 204, "multiValueHeaders": headers, "body": "", "isBase64Encoded": False}


def as_proxy_response(response: Response[str]) -> dict[str, Any]:
    """An error `Response` made before routing, in the REST proxy form the resolver returns."""
    headers = {"Content-Type": [str(response.content_type)], **{k: [str(v)] for k, v in response.headers.items()}}
    return {"statusCode": response.status_code, "multiValueHeaders": headers, "body": response.body,
            "isBase64Encoded": False}  # fmt: skip


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
