"""Generate docs/openapi.json from the three handlers, so the document cannot disagree with the code.

Each function's routes (`recsys.api.App`) carry their functions; a parameter's place and bounds come
from its `recsys.routing` marker, the body's schema from its dataclass, an answer's from the
TypedDict the function returns (`recsys.schemas`). These are what `recsys.routing` checks every
request against, so what the document promises is what the handlers enforce. The routes and
handlers come from template.yaml, and the two must agree.

    python -m scripts.openapi            # rewrite docs/openapi.json
    python -m scripts.openapi --check    # exit 1 when docs/openapi.json is out of date
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any, Literal, NotRequired, Required, get_args, get_origin

from devstack.invoker import Invoker
from devstack.template import load_application
from recsys import schemas as api_types
from recsys.routing import Path as PathParameter
from recsys.routing import Query, Route, Spec, optional, unwrap

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"

INFO = {
    "title": "Movie recommender API",
    "version": "1.0.0",
    "description": (
        "LightFM recommendations for MovieLens users, their liked history and similar movies. "
        'Ids are the dataset\'s own. Every error is a JSON body {"error": {"code", "message"}}. '
        "Generated from the handlers by `python -m scripts.openapi`; do not edit."
    ),
}
SERVERS = [{"url": "http://127.0.0.1:3000", "description": "the local stack of `make demo`"}]
#: API Gateway's IAM authorization, as its OpenAPI extension names it (docs/API.md, "Events").
SIGV4 = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "description": "AWS Signature Version 4 (service execute-api) by an IAM identity allowed execute-api:Invoke",
    "x-amazon-apigateway-authtype": "awsSigv4",
}
PRIMITIVES = {int: "integer", float: "number", bool: "boolean", str: "string"}


class Schemas:
    """JSON schemas of the types `recsys.routing` checks and `recsys.schemas` declares; a TypedDict
    or dataclass becomes a component, referred to by name."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, tp: Any) -> dict[str, Any]:
        if get_origin(tp) in (NotRequired, Required):
            (tp,) = get_args(tp)
        tp, spec = unwrap(tp)
        inner, nullable = optional(tp)
        schema = self._of(inner, spec)
        if nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if spec is not None and spec.description:
            schema["description"] = spec.description
        return schema

    def _of(self, tp: Any, spec: Spec | None) -> dict[str, Any]:
        limits = spec or Spec()
        if tp in PRIMITIVES:
            schema: dict[str, Any] = {"type": PRIMITIVES[tp]}
            bounds = (
                {"minimum": limits.ge, "maximum": limits.le}
                if tp in (int, float)
                else {"maxLength": limits.max_length, "pattern": limits.pattern}
            )
            return schema | {k: v for k, v in bounds.items() if v is not None}
        if tp is object:
            return {}
        origin = get_origin(tp)
        if origin is Literal:
            return {"type": "string", "enum": list(get_args(tp))}
        if origin in (list, tuple):  # tuple[X, ...] is what `recsys.routing` makes of a JSON array
            item = get_args(tp)[0]
            schema = {"type": "array", "items": self.of(item)}
            return schema | ({"maxItems": limits.max_length} if limits.max_length is not None else {})
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of(get_args(tp)[1]) or True}
        if typing.is_typeddict(tp) or _is_namedtuple(tp):
            return self._component(tp)
        raise TypeError(f"no JSON schema for {tp!r}")

    def _component(self, cls: Any) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.components:
            self.components[name] = {}  # claimed first: a model may refer to itself
            hints = typing.get_type_hints(cls, include_extras=True)
            schema: dict[str, Any] = {"type": "object", "properties": {n: self.of(t) for n, t in hints.items()}}
            if _is_namedtuple(cls):  # a request body: `recsys.routing.check_object`
                schema["required"] = [n for n in cls._fields if n not in cls._field_defaults]
                for field, default in cls._field_defaults.items():
                    schema["properties"][field]["default"] = list(default) if isinstance(default, tuple) else default
                schema["additionalProperties"] = False  # unknown keys are refused
            else:
                schema["required"] = [n for n in hints if n in cls.__required_keys__]
            if cls.__doc__ and not cls.__doc__.startswith(f"{name}("):  # a NamedTuple's default doc is its signature
                schema["description"] = inspect.cleandoc(cls.__doc__)
            self.components[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}


def _is_namedtuple(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def operation(route: Route, schemas: Schemas) -> dict[str, Any]:
    """The OpenAPI operation of `route`: parameters, body, and responses."""
    out: dict[str, Any] = {"tags": list(route.tags), "summary": f"{route.method} {route.path}",
                           "operationId": route.function.__name__}  # fmt: skip
    if route.function.__doc__:
        out["description"] = inspect.cleandoc(route.function.__doc__)
    parameters = []
    for p in route.parameters:
        spec = unwrap(p.type)[1]
        if p.where in (PathParameter, Query):
            schema = schemas.of(p.type)
            required = p.default is inspect.Parameter.empty
            if not required and p.default is not None:
                schema["default"] = p.default
            parameters.append({"name": p.name, "in": "path" if p.where is PathParameter else "query",
                               "required": required, "description": spec.description if spec else None,
                               "schema": schema})  # fmt: skip
        else:
            content = {"application/json": {"schema": schemas.of(unwrap(p.type)[0])}}
            out["requestBody"] = {"required": True, "content": content}
    if parameters:
        out["parameters"] = parameters
    answer = typing.get_type_hints(route.function)["return"]
    responses: dict[str, Any] = {}
    for status, response in sorted(route.responses.items()):
        response = dict(response)
        if status == 200:
            response["content"] = {"application/json": {"schema": schemas.of(answer)}}
        elif "content" in response:
            response["content"] = {t: {"schema": schemas.of(getattr(api_types, c["schema"]))}
                                   for t, c in response["content"].items()}  # fmt: skip
        responses[str(status)] = response
    out["responses"] = responses
    return out


def build() -> dict[str, Any]:
    app = load_application()
    invoker = Invoker(app, {})
    paths: dict[str, Any] = {}
    schemas = Schemas()
    tags: set[str] = set()
    for name in sorted(invoker.modules):  # every function the API serves, imported in isolation
        for route in invoker.modules[name].app.routes:
            op = operation(route, schemas) | {"x-function": name}
            tags.update(op["tags"])
            paths.setdefault(route.path, {})[route.method.lower()] = op
    declared = {(r.method.lower(), r.path) for r in app.routes if r.method != "OPTIONS"}  # preflight: CORS
    for route in app.routes:  # the template says who may call a route: AWS_IAM, SigV4-signed callers only
        if route.auth == "AWS_IAM":
            paths[route.path][route.method.lower()]["security"] = [{"sigv4": []}]
    generated = {(m, p) for p, ops in paths.items() for m in ops}
    if declared != generated:
        raise SystemExit(f"template.yaml and the handlers disagree: {sorted(declared ^ generated)}")
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": SERVERS,
        "tags": [{"name": t} for t in sorted(tags)],
        "paths": {p: paths[p] for p in sorted(paths)},
        "components": {
            "schemas": {k: schemas.components[k] for k in sorted(schemas.components)},
            "securitySchemes": {"sigv4": SIGV4},
        },
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the document is out of date")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            print(f"{DOCUMENT.relative_to(ROOT)} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.parent.mkdir(exist_ok=True)
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
