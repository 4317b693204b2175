"""Run the SAM application without Docker: invoke a function, serve the API, or run the whole demo.

Everything comes from template.yaml: each function's handler, code folder, layer and environment,
and each API route (path and method). So routes are defined once, and a route added to the
template is served here without another line.

    python -m scripts.localstack invoke RecommendFunction events/recommend.json
    python -m scripts.localstack serve --model-uri build/model-store
    python -m scripts.localstack demo            # moto S3 + train/publish + API + website
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import importlib.util
import json
import mimetypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
FRONTEND = ROOT / "frontend"
POINTER = "latest.json"  # recsys.uri.POINTER; this script runs before the layer is on the path

#: Security headers the CloudFront response-headers policy adds; served locally too so that the
#: browser tests catch a page that would break under them.
SITE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


# -- the template -----------------------------------------------------------------------------


class _Tag:
    """A CloudFormation intrinsic (!Ref, !Sub, ...) kept as data; only literals are used locally."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


class _TemplateLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> _Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return _Tag(suffix, value)


_TemplateLoader.add_multi_constructor("!", _construct_tag)


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str  # API Gateway resource, e.g. /users/{user_id}/history

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")


@dataclass
class Function:
    name: str
    code_uri: Path
    handler: str
    layers: list[Path]
    environment: dict[str, str] = field(default_factory=dict)
    runtime: str = ""


@dataclass
class Application:
    functions: dict[str, Function]
    routes: list[Route]


def load_application(template: Path = TEMPLATE) -> Application:
    doc = yaml.load(template.read_text(), Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    resources = doc["Resources"]
    glob = doc.get("Globals", {}).get("Function", {})
    layer_paths = {
        name: ROOT / res["Properties"]["ContentUri"]
        for name, res in resources.items()
        if res["Type"] == "AWS::Serverless::LayerVersion"
    }
    functions, routes = {}, []
    for name, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        props = res["Properties"]
        layers = [layer_paths[_ref(x)] for x in props.get("Layers", glob.get("Layers", []))]
        env = {**_literals(glob.get("Environment", {})), **_literals(props.get("Environment", {}))}
        runtime = str(props.get("Runtime", glob.get("Runtime", "")))
        functions[name] = Function(name, ROOT / props["CodeUri"], props["Handler"], layers, env, runtime)
        for event in props.get("Events", {}).values():
            if event["Type"] == "Api":
                routes.append(Route(name, event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    return Application(functions, routes)


def model_parts(app: Application | None = None) -> dict[str, tuple[str, ...]]:
    """The parts of the model each function reads, as its handler module declares them (`MODEL_PARTS`)."""
    app = app or load_application()
    return {
        name: tuple(importlib.import_module(f"functions.{fn.code_uri.name}.app").MODEL_PARTS)
        for name, fn in app.functions.items()
    }


def _ref(value: Any) -> str:
    return str(value.value) if isinstance(value, _Tag) else str(value)


def _literals(environment: dict[str, Any]) -> dict[str, str]:
    """The environment variables with literal values (intrinsics are set by the local stack)."""
    return {k: str(v) for k, v in environment.get("Variables", {}).items() if not isinstance(v, _Tag)}


# -- invoking ---------------------------------------------------------------------------------


class LambdaContext:
    def __init__(self, function: str) -> None:
        self.function_name = function
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function}"
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


class Invoker:
    """Loads each function's handler module in isolation and invokes it in process.

    Each function's ``app.py`` is imported under its own module name (so the three ``app`` modules
    never shadow each other), with the layer on ``sys.path`` and the function's environment set
    while it is imported; `overrides` stand in for the template's intrinsic values, and a variable
    already set in this process wins over the template's literal (``MODEL_REFRESH_SECONDS=1``).

    Every function is imported here, before any request: an import swaps ``os.environ``, which
    the whole process shares, so an import during another function's first request would hand
    that function this function's settings (a 60 s refresh instead of 1 s, once).

    Like one Lambda container per function, each function handles one event at a time: the
    powertools resolver keeps the current event on itself, so two concurrent events in one
    module would read each other's parameters.
    """

    def __init__(self, app: Application, overrides: dict[str, str], functions: list[str] | None = None) -> None:
        """`functions`: which to import (all by default; one, as Lambda's init does, for a cold start)."""
        self.app = app
        self.overrides = overrides
        self.modules: dict[str, ModuleType] = {}
        self._busy = {name: threading.Lock() for name in app.functions}
        for layer in {p for f in app.functions.values() for p in f.layers}:
            if str(layer) not in sys.path:
                sys.path.insert(0, str(layer))
        os.environ.update({"POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"})
        os.environ.update(overrides)
        # what every function declares alike (the template's Globals) holds between imports too
        shared = set.intersection(*(set(f.environment.items()) for f in app.functions.values()))
        os.environ.update({k: v for k, v in shared if k not in os.environ})
        for name in app.functions if functions is None else functions:
            self.modules[name] = self._import(app.functions[name])

    def handler(self, name: str) -> Any:
        fn = self.app.functions[name]
        return getattr(self.modules[name], fn.handler.rsplit(".", 1)[1])

    def _import(self, fn: Function) -> ModuleType:
        module_name, _ = fn.handler.rsplit(".", 1)
        path = fn.code_uri / f"{module_name.replace('.', '/')}.py"
        spec = importlib.util.spec_from_file_location(f"lambda_{fn.name}.{module_name}", path)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(f"{fn.name}: no handler module at {path}")
        module = importlib.util.module_from_spec(spec)
        saved = dict(os.environ)
        os.environ.update({**fn.environment, **saved, **self.overrides, "AWS_LAMBDA_FUNCTION_NAME": fn.name})
        try:
            spec.loader.exec_module(module)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return module

    def invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        handler = self.handler(name)
        with self._busy[name]:
            return handler(event, LambdaContext(name))  # type: ignore[no-any-return]


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


# -- serving ----------------------------------------------------------------------------------


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
        if route is None:  # what API Gateway answers, through the template's DEFAULT_4XX response
            body403 = {"error": {"code": "gateway", "message": "Missing Authentication Token"}}
            return 403, {**origin, "Content-Type": "application/json"}, json.dumps(body403).encode()
        event = api_event(route, method, path, url.query, headers, body)
        response = self.invoker.invoke(route.function, event)
        out = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        out.update(response.get("headers") or {})
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        return int(response["statusCode"]), out, data


def _http_handler(
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
            else:
                status, headers, data = _static(site, config_js, self.path, site_headers)  # type: ignore[arg-type]
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


def _static(
    site: Path, config_js: bytes | None, target: str, headers: dict[str, str] = SITE_HEADERS
) -> tuple[int, dict[str, str], bytes]:
    path = urlsplit(target).path
    if path.endswith("/"):
        path += "index.html"
    if path == "/config.js" and config_js is not None:
        return 200, {"Content-Type": "text/javascript; charset=utf-8", **headers}, config_js
    file = (site / path.lstrip("/")).resolve()
    if site.resolve() not in file.parents or not file.is_file():
        return 404, {"Content-Type": "text/plain", **headers}, b"not found"
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind.endswith("javascript"):
        kind += "; charset=utf-8"
    return 200, {"Content-Type": kind, "Cache-Control": "no-cache", **headers}, file.read_bytes()


def store_uri(raw: str) -> str:
    """A model store's URI, given the store or its pointer (``.../latest.json``)."""
    trimmed = raw.rstrip("/")
    return trimmed[: -len(POINTER)].rstrip("/") or "." if trimmed.endswith(POINTER) else trimmed


def site_csp(api_url: str, template: Path = TEMPLATE) -> str:
    """The Content-Security-Policy CloudFront serves (template.yaml), with the local API to connect to."""
    doc = yaml.load(template.read_text(), Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    for res in doc["Resources"].values():
        config = res.get("Properties", {}).get("ResponseHeadersPolicyConfig", {})
        policy = config.get("SecurityHeadersConfig", {}).get("ContentSecurityPolicy", {}).get("ContentSecurityPolicy")
        if policy is not None:
            return re.sub(r"https://\*\.execute-api\.\S+\.amazonaws\.com", api_url, _ref(policy))
    raise ValueError(f"{template}: no ContentSecurityPolicy in a response headers policy")


def config_js(api_url: str) -> bytes:
    return f"// Written at deploy or demo time; do not edit.\nexport const API_URL = {json.dumps(api_url)};\n".encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # socketserver's default of 5 drops connections under a burst of clients


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(handler: type[BaseHTTPRequestHandler], port: int) -> ThreadingHTTPServer:
    server = _Server(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:  # type: ignore[type-arg]
    """Terminate a child process, and kill it if it has not exited after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sample_event(name: str, user_id: int | str, movie_id: int | str) -> dict[str, Any]:
    """The sample event `events/<name>.json` with its user and movie ids (196 and 50) replaced."""
    event = json.loads((ROOT / "events" / f"{name}.json").read_text())
    event["path"] = event["path"].replace("/196", f"/{user_id}").replace("/50/", f"/{movie_id}/")
    for key, value in (("user_id", user_id), ("movie_id", movie_id)):
        if key in (event.get("pathParameters") or {}):
            event["pathParameters"][key] = str(value)
    return event  # type: ignore[no-any-return]


def upload_store(s3: Any, bucket: str, prefix: str, store: Path) -> None:
    """Copy a local model store under s3://`bucket`/`prefix`, its pointer last (as publishing does)."""
    files = sorted(p for p in store.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in sorted(files, key=lambda p: p.name == POINTER):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(store)}", Body=path.read_bytes())


def serve(model_uri: str, api_port: int, web_port: int | None, allowed_origin: str = "*") -> list[ThreadingHTTPServer]:
    """Start the local API (and the website when `web_port` is given); return the servers."""
    app = load_application()
    invoker = Invoker(app, {"MODEL_URI": model_uri, "ALLOWED_ORIGIN": allowed_origin})
    servers = [start_server(_http_handler(LocalApi(app, invoker, allowed_origin), None, None), api_port)]
    if web_port is not None:
        api_url = f"http://127.0.0.1:{servers[0].server_port}"
        script = config_js(api_url)
        (FRONTEND / "config.js").write_bytes(script)
        headers = {**SITE_HEADERS, "Content-Security-Policy": site_csp(api_url)}
        servers.append(start_server(_http_handler(None, FRONTEND, script, headers), web_port))
    return servers


# -- the demo ---------------------------------------------------------------------------------


@contextlib.contextmanager
def moto_s3(port: int) -> Iterator[str]:
    """A moto S3 server on loopback; yields its endpoint URL and points boto3 at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )  # fmt: skip
    try:
        yield endpoint
    finally:
        server.stop()


def demo(args: argparse.Namespace) -> int:
    import boto3

    from training.cli import main as train

    started = time.perf_counter()
    with moto_s3(args.s3_port):
        s3 = boto3.client("s3")
        for bucket in ("recommender-models", "recommender-website"):
            s3.create_bucket(Bucket=bucket)
        model_uri = "s3://recommender-models/recommender"
        code = train(["--ratings", args.ratings, "--model-uri", model_uri, "--cache-dir", str(ROOT / "build/cache")])
        if code != 0:
            return code
        servers = serve(model_uri, args.api_port, args.web_port)
        api, web = (f"http://127.0.0.1:{s.server_port}" for s in servers)
        print(f"\nAPI      {api}   (try {api}/recommendations/196?explain=true)")
        print(f"Website  {web}/index.html   similar: {web}/similar.html   model: {web}/model.html")
        print(f"READY api={api} web={web} ({time.perf_counter() - started:.1f} s)  Ctrl-C stops everything", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping")
        for server in servers:
            server.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.localstack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inv = sub.add_parser("invoke", help="invoke one function with an event file, like `sam local invoke`")
    inv.add_argument("function", help="logical id in template.yaml, e.g. RecommendFunction")
    inv.add_argument("event", type=Path)
    inv.add_argument("--model-uri", default=os.environ.get("MODEL_URI", str(ROOT / "build/model-store")))
    srv = sub.add_parser("serve", help="serve the API (and the website) against a model store")
    srv.add_argument("--model-uri", required=True)
    srv.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", 3000)))
    srv.add_argument("--web-port", type=int, default=None)
    srv.add_argument("--allowed-origin", default="*")
    dem = sub.add_parser("demo", help="moto S3, train and publish, serve API and website")
    dem.add_argument("--ratings", default=os.environ.get("RATINGS") or "data/ml-100k")
    dem.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT") or 3000))
    dem.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT") or 8080))
    dem.add_argument("--s3-port", type=int, default=int(os.environ.get("S3_PORT") or 5055))
    args = parser.parse_args(argv)
    # Ctrl-C and SIGTERM stop the servers cleanly. Set explicitly: a process started in the
    # background by a non-interactive shell inherits SIGINT ignored, and Python then keeps it so.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    if args.command == "invoke":
        app = load_application()
        if args.function not in app.functions:
            parser.error(f"no function {args.function!r} in template.yaml; there are {', '.join(app.functions)}")
        store = store_uri(args.model_uri)
        if "://" not in store and not (Path(store) / POINTER).is_file():
            print(f"error: no model at {store} (no {POINTER}); `make train` publishes one there", file=sys.stderr)
            return 2
        invoker = Invoker(app, {"MODEL_URI": store, "ALLOWED_ORIGIN": "*"}, functions=[args.function])
        print(json.dumps(invoker.invoke(args.function, json.loads(args.event.read_text())), indent=2))
        return 0
    if args.command == "serve":
        try:  # a signal may come the moment READY is read, while print is still flushing
            servers = serve(args.model_uri, args.api_port, args.web_port, args.allowed_origin)
            print("READY " + " ".join(f"http://127.0.0.1:{s.server_port}" for s in servers), flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    return demo(args)


if __name__ == "__main__":
    sys.exit(main())
