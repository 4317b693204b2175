"""API Gateway in miniature: the template's routes over HTTP on loopback, its REST proxy events,
its 403 for a route no one declared or a request that an AWS_IAM route refuses (`devstack.sigv4`),
and the website beside it."""

from __future__ import annotations

import base64
import json
import os
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devstack import sigv4
from devstack.dynamodb import EVENTS_TABLE, FEEDBACK_TABLE
from devstack.invoker import Invoker
from devstack.servers import start_server
from devstack.site import SITE_HEADERS, config_js, site_csp, static_file
from devstack.template import FRONTEND, Application, Route, load_application


def api_event(route: Route, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The API Gateway REST proxy event that `route` receives for this request."""
    match = route.pattern.match(path)
    params = match.groupdict() if match else {}
    multi = parse_qs(query, keep_blank_values=True)
    # with no binary media types declared, API Gateway passes a UTF-8 body as text
    text = body.decode() if _is_text(body) else None
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.path,
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": (text or None) if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }


def _is_text(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


class LocalApi:
    """API Gateway in miniature: routes from the template, CORS preflight, 403 for no route."""

    def __init__(self, app: Application, invoker: Invoker, allowed_origin: str) -> None:
        self.app, self.invoker, self.allowed_origin = app, invoker, allowed_origin

    def match(self, method: str, path: str) -> Route | None:
        for route in self.app.routes:
            if route.method == method and route.pattern.match(path):
                return route
        return None

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        origin = {"Access-Control-Allow-Origin": self.allowed_origin}
        route = self.match(method, path)
        refused = "Missing Authentication Token" if route is None else None
        if route is not None and route.auth == "AWS_IAM":
            refused = sigv4.refusal(method, target, headers, body)
        if refused is not None:  # what API Gateway answers, through the template's DEFAULT_4XX response
            body403 = {"error": {"code": "gateway", "message": refused}}
            return 403, {**origin, "Content-Type": "application/json"}, json.dumps(body403).encode()
        assert route is not None
        event = api_event(route, method, path, url.query, headers, body)
        if route.auth == "AWS_IAM":  # who signed, as API Gateway tells the function
            event["requestContext"]["identity"]["accessKey"] = sigv4.ACCESS_KEY
        response = self.invoker.invoke(route.function, event)
        out = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        out.update(response.get("headers") or {})
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        return int(response["statusCode"]), out, data


def http_handler(
    api: LocalApi | None, site: Path | None, config_js: bytes | None, site_headers: dict[str, str] = SITE_HEADERS
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __getattr__(self, name: str) -> Any:
            # http.server looks up do_<METHOD>: every method goes to the API (or the site), which
            # answers undeclared ones with 403 as API Gateway does, never http.server's 501.
            if name.startswith("do_"):
                return self._dispatch
            raise AttributeError(name)

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if api is not None:
                status, headers, data = api.handle(self.command, self.path, dict(self.headers.items()), body)
            elif site is not None:
                status, headers, data = static_file(site, config_js, self.path, site_headers)
            else:
                status, headers, data = 404, {"Content-Type": "text/plain"}, b"not found"
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if os.environ.get("LOCALSTACK_ACCESS_LOG"):
                super().log_message(format, *args)

    return Handler


def serve(
    model_uri: str,
    api_port: int,
    dynamodb_endpoint: str,
    allowed_origin: str = "*",
    feedback_table: str = FEEDBACK_TABLE,
    events_table: str = EVENTS_TABLE,
) -> ThreadingHTTPServer:
    """The local API on 127.0.0.1:`api_port` (0: any free port), every function imported first; the
    tables are `feedback_table` and `events_table` on the local DynamoDB at `dynamodb_endpoint`."""
    app = load_application()
    overrides = {"MODEL_URI": model_uri, "ALLOWED_ORIGIN": allowed_origin, "FEEDBACK_TABLE": feedback_table,
                 "EVENTS_TABLE": events_table, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint}  # fmt: skip
    invoker = Invoker(app, overrides)
    return start_server(http_handler(LocalApi(app, invoker, allowed_origin), None, None), api_port)


def serve_site(api_url: str, web_port: int) -> ThreadingHTTPServer:
    """The website on 127.0.0.1:`web_port`, with CloudFront's headers and a `config.js` naming `api_url`."""
    script = config_js(api_url)
    (FRONTEND / "config.js").write_bytes(script)
    headers = {**SITE_HEADERS, "Content-Security-Policy": site_csp(api_url)}
    return start_server(http_handler(None, FRONTEND, script, headers), web_port)
