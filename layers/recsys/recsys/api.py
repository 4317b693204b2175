"""HTTP glue shared by the handlers: the router, the request body, the error map, CORS.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``, mapped in one place
(`error_response`) from the exception types of `recsys.errors`:

=================================  ======  =====================================
raised                             status  code
=================================  ======  =====================================
InvalidRequestError                400     invalid_request (a bad parameter or body: `recsys.routing`)
UnknownUser/Movie/GenreError       404     unknown_user / unknown_movie / unknown_genre
no such route                      404     no_route
LimitExceededError                 409     like_cap (a visitor's likes would pass the cap)
ForgottenVisitorError              410     visitor_forgotten (the id was forgotten: it takes no more likes)
FeedbackUnavailableError           503     feedback_unavailable (+ Retry-After)
EventsUnavailableError             503     events_unavailable (+ Retry-After)
ModelUnavailableError              503     model_unavailable (+ Retry-After)
ConfigurationError                 503     model_unavailable (+ Retry-After)
anything else                      500     internal (logged with its trace)
=================================  ======  =====================================

A 5xx body is a fixed text and the request id; the cause is logged under that id, never sent.

A POST body must come as ``application/json``, hold at most `MAX_BODY_BYTES`, and be JSON whose
nesting, numbers and keys stay within `parse_body`'s limits; `check_body` looks at the raw event
before routing, and the route's body parameter is parsed only when the route is found.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from recsys.errors import (
    ConfigurationError,
    EventsUnavailableError,
    FeedbackUnavailableError,
    ForgottenVisitorError,
    InvalidRequestError,
    LimitExceededError,
    ModelUnavailableError,
    NotFoundError,
)
from recsys.routing import Route

logger = logging.getLogger(__name__)

NAMESPACE = "MovieRecommender"
RETRY_AFTER_SECONDS = 5
_ERROR_CONTENT = {"application/json": {"schema": "ErrorBody"}}
# What every route documents (docs/openapi.json is generated from these). 200 takes its schema
# from the handler's return annotation; 429 comes from API Gateway's throttling, through the
# template's THROTTLED gateway response.
RESPONSES: dict[int, Any] = {
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


POST_RESPONSES: dict[int, Any] = {
    **RESPONSES,
    400: {
        "description": "The body is not JSON of the request schema, is over 32 KiB, or is not sent as "
        "application/json; or a value is out of range",
        "content": _ERROR_CONTENT,
    },
}
MAX_BODY_BYTES = 32 * 1024
#: What the feedback routes add: the cap, and a table that does not answer.
FEEDBACK_RESPONSES: dict[int, Any] = {
    409: {"description": "The visitor's likes would pass the cap; nothing was stored", "content": _ERROR_CONTENT},
    410: {"description": "The visitor was forgotten: the id takes no more likes", "content": _ERROR_CONTENT},
    503: {
        "description": "No model, or the likes could not be stored; retry after the Retry-After seconds",
        "content": _ERROR_CONTENT,
        "headers": RESPONSES[503]["headers"],
    },
}

#: What the events routes add: a table that does not answer.
EVENTS_RESPONSES: dict[int, Any] = {
    403: {"description": "Not signed, or signed by someone not allowed (API Gateway's IAM authorization)",
          "content": _ERROR_CONTENT},
    503: {
        "description": "No model, or the events could not be stored; retry after the Retry-After seconds",
        "content": _ERROR_CONTENT,
        "headers": RESPONSES[503]["headers"],
    },
}


#: How deep a POST body may nest (the request schema needs 2), and how many digits a number may have.
MAX_BODY_DEPTH = 8
MAX_NUMBER_DIGITS = 20

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """The routes of one function, and the dispatch of an API Gateway REST (proxy) event to them."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def get(self, path: str, *, responses: dict[int, Any] = RESPONSES, tags: tuple[str, ...] = ()) -> Callable[[F], F]:
        return self._route("GET", path, responses, tags)

    def post(
        self, path: str, *, responses: dict[int, Any] = POST_RESPONSES, tags: tuple[str, ...] = ()
    ) -> Callable[[F], F]:
        return self._route("POST", path, responses, tags)

    def delete(
        self, path: str, *, responses: dict[int, Any] = RESPONSES, tags: tuple[str, ...] = ()
    ) -> Callable[[F], F]:
        return self._route("DELETE", path, responses, tags)

    def _route(self, method: str, path: str, responses: dict[int, Any], tags: tuple[str, ...]) -> Callable[[F], F]:
        def register(function: F) -> F:
            self.routes.append(Route(method, path, function, tags, responses))
            return function

        return register

    def route_of(self, event: dict[str, Any]) -> str:
        """The route `event` asks for, as metrics name it: ``GET /users/{user_id}/history``;
        ``OPTIONS`` for a preflight and ``other`` when no route matches (a path never becomes a
        dimension: it would make a metric per user)."""
        method, path = event.get("httpMethod"), str(event.get("path") or "/")
        if method == "OPTIONS":
            return "OPTIONS"
        for route in self.routes:
            if route.method == method and route.pattern.fullmatch(path):
                return f"{route.method} {route.path}"
        return "other"

    def resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        """The proxy response to `event`: the route's answer as JSON, or the mapped error."""
        method, path = event.get("httpMethod"), str(event.get("path") or "/")
        try:
            for route in self.routes:
                match = route.pattern.fullmatch(path)
                if match and route.method == method:
                    answer = route.function(**route.arguments(match, event, lambda: request_json(event)))
                    return proxy_response(200, json.dumps(answer, allow_nan=False))
            return error(404, "no_route", f"no route {method} {path}")
        except Exception as exc:  # the one place every error becomes its response
            return error_response(exc, request_id(event))


# -- the request body ------------------------------------------------------------------------


def check_body(event: dict[str, Any]) -> None:
    """InvalidRequestError when the POST `event`'s body is not sent as JSON (media types are
    case-insensitive, and a charset is all it may add), is too large, or is not base64 of UTF-8
    text where API Gateway says it is base64."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    media_type = str(headers.get("content-type") or "").split(";")[0].strip().lower()
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


def request_json(event: dict[str, Any]) -> Any:
    """The JSON value of the body of `event` (after `check_body`), parsed by `parse_body`."""
    text = event.get("body") or ""
    if event.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    if not text.strip():
        raise InvalidRequestError("body: a JSON object is required, and the body is empty")
    return parse_body(text)


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


def handle(app: App, event: dict[str, Any], allowed_origin: str | None) -> dict[str, Any]:
    """The response to `event`: a CORS preflight is answered here, a POST body is checked, the rest
    is routed by `app`; every response gets the CORS headers of `allowed_origin`."""
    method = event.get("httpMethod")
    if method == "OPTIONS":
        response = preflight()
    else:
        try:
            if method == "POST":
                check_body(event)
        except InvalidRequestError as exc:
            response = error_response(exc, request_id(event))
        else:
            response = app.resolve(event)
    add_cors(response, event, allowed_origin)
    return response


_FALLBACK = re.compile(r'"fallback": "([a-z_]+)"')


def fallback_of(status: int, body: str) -> str | None:
    """Why an answer fell back, for the metrics: the reason a 200 names (``unknown_user``,
    ``no_likes``, ``no_known_likes``), or ``model_unavailable`` for that 503; else None."""
    if status == 503 and '"model_unavailable"' in body:
        return "model_unavailable"
    found = _FALLBACK.search(body) if status == 200 else None
    return found.group(1) if found else None


# -- errors ----------------------------------------------------------------------------------


def proxy_response(status: int, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A response in the REST proxy form, JSON."""
    multi = {"Content-Type": ["application/json"], **{k: [v] for k, v in (headers or {}).items()}}
    return {"statusCode": status, "multiValueHeaders": multi, "body": body, "isBase64Encoded": False}


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, request_id: str | None = None
) -> dict[str, Any]:
    detail = {"code": code, "message": message, **({"request_id": request_id} if request_id else {})}
    return proxy_response(status, json.dumps({"error": detail}), headers)


# What a 5xx tells the caller: a fixed text and the request id. What went wrong (paths, bucket
# keys, AWS error codes, digests, the refused pickle global) goes to the log under that id.
UNAVAILABLE_MESSAGE = "no model is available right now; retry after the Retry-After seconds"
INTERNAL_MESSAGE = "internal error; it has been logged"
FEEDBACK_UNAVAILABLE_MESSAGE = "the likes could not be stored right now; retry after the Retry-After seconds"
EVENTS_UNAVAILABLE_MESSAGE = "the events could not be stored right now; retry after the Retry-After seconds"


def error_response(exc: Exception, request_id: str | None) -> dict[str, Any]:
    """The one map from an exception to its error response (the table in this module's docstring)."""
    if isinstance(exc, InvalidRequestError):
        return error(400, exc.code, str(exc))
    if isinstance(exc, NotFoundError):
        return error(404, exc.code, str(exc))
    if isinstance(exc, LimitExceededError):
        return error(409, exc.code, str(exc))
    if isinstance(exc, ForgottenVisitorError):
        return error(410, exc.code, str(exc))
    if isinstance(exc, FeedbackUnavailableError):
        logger.error("feedback store unavailable (request %s): %s", request_id, exc)
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error(503, exc.code, FEEDBACK_UNAVAILABLE_MESSAGE, retry, request_id)
    if isinstance(exc, EventsUnavailableError):
        logger.error("events table unavailable (request %s): %s", request_id, exc)
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error(503, exc.code, EVENTS_UNAVAILABLE_MESSAGE, retry, request_id)
    if isinstance(exc, (ModelUnavailableError, ConfigurationError)):
        logger.error("serving unavailable (request %s): %s: %s", request_id, exc.code, exc)
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error(503, "model_unavailable", UNAVAILABLE_MESSAGE, retry, request_id)
    logger.error("unhandled error (request %s)", request_id, exc_info=exc)
    return error(500, "internal", INTERNAL_MESSAGE, request_id=request_id)


def request_id(event: dict[str, Any]) -> str:
    """API Gateway's id of the request (what its own access log and x-amzn-RequestId carry)."""
    context = event.get("requestContext")
    return str((context.get("requestId") if isinstance(context, dict) else None) or "unknown")


PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET,POST,DELETE,OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}


def preflight() -> dict[str, Any]:
    """The answer to a CORS preflight; `add_cors` then allows the origin only if it is the allowed one."""
    headers = {k: [v] for k, v in PREFLIGHT_HEADERS.items()}
    return {"statusCode": 204, "multiValueHeaders": headers, "body": "", "isBase64Encoded": False}


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
