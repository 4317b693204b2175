"""Generate docs/openapi.json from the three handlers, so the document cannot disagree with the code.

Each function's powertools resolver describes its own routes; this merges the three documents
into one for the whole API (the routes and handlers come from template.yaml), and drops what
powertools adds that this API never answers: 422 (request validation answers 400 with the
error body) and the schemas only 422 used.

    python -m scripts.openapi            # rewrite docs/openapi.json
    python -m scripts.openapi --check    # exit 1 when docs/openapi.json is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from devstack.invoker import Invoker
from devstack.template import load_application

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"
UNUSED = ("HTTPValidationError", "ValidationError", "ResponseValidationError")

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


def build() -> dict[str, Any]:
    app = load_application()
    invoker = Invoker(app, {})
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    tags: set[str] = set()
    for name in sorted(app.functions):
        invoker.handler(name)  # imports the function module in isolation
        resolver = invoker.modules[name].app
        part = json.loads(resolver.get_openapi_json_schema(title=INFO["title"], version=INFO["version"]))
        for path, operations in part.get("paths", {}).items():
            for operation in operations.values():
                operation["responses"].pop("422", None)
                operation["x-function"] = name
                tags.update(operation.get("tags", []))
            paths.setdefault(path, {}).update(operations)
        schemas.update(part.get("components", {}).get("schemas", {}))
    for unused in UNUSED:
        schemas.pop(unused, None)
    declared = {(r.method.lower(), r.path) for r in app.routes if r.method != "OPTIONS"}  # preflight: CORS
    generated = {(m, p) for p, ops in paths.items() for m in ops}
    if declared != generated:
        raise SystemExit(f"template.yaml and the handlers disagree: {sorted(declared ^ generated)}")
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": SERVERS,
        "tags": [{"name": t} for t in sorted(tags)],
        "paths": {p: paths[p] for p in sorted(paths)},
        "components": {"schemas": {k: schemas[k] for k in sorted(schemas)}},
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
