"""template.yaml read as the local stack needs it: functions (handler, code, layers, environment,
runtime), API routes, and the parts of the model each function declares.

Routes are defined once, in the template: a route added there is served locally without another line.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
FRONTEND = ROOT / "frontend"


class Tag:
    """A CloudFormation intrinsic (!Ref, !Sub, ...) kept as data; only literals are used locally."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


class TemplateLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{suffix}", node.start_mark)
    return Tag(suffix, value)


TemplateLoader.add_multi_constructor("!", _construct_tag)


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str  # API Gateway resource, e.g. /users/{user_id}/history
    auth: str | None = None  # the event's Auth.Authorizer: AWS_IAM (SigV4-signed callers only) or None

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
    image: bool = False  # PackageType Image: code_uri is its Dockerfile's folder, runtime is the image's


@dataclass
class Application:
    functions: dict[str, Function]
    routes: list[Route]


def document(template: Path = TEMPLATE) -> dict[str, Any]:
    """The template as data, its intrinsics kept as `Tag`s."""
    doc: dict[str, Any] = yaml.load(template.read_text(), Loader=TemplateLoader)  # noqa: S506 - SafeLoader subclass
    return doc


def load_application(template: Path = TEMPLATE) -> Application:
    doc = document(template)
    resources = doc["Resources"]
    glob = doc.get("Globals", {}).get("Function", {})
    defaults = {name: str(p["Default"]) for name, p in doc.get("Parameters", {}).items() if "Default" in p}
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
        env = {**_literals(glob.get("Environment", {}), defaults), **_literals(props.get("Environment", {}), defaults)}
        if props.get("PackageType") == "Image":
            code = ROOT / Path(res["Metadata"]["Dockerfile"]).parent
            functions[name] = Function(name, code, props["ImageConfig"]["Command"][0], [], env, image=True)
        else:
            layers = [layer_paths[ref(x)] for x in props.get("Layers", glob.get("Layers", []))]
            runtime = str(props.get("Runtime", glob.get("Runtime", "")))
            functions[name] = Function(name, ROOT / props["CodeUri"], props["Handler"], layers, env, runtime)
        for event in props.get("Events", {}).values():
            if event["Type"] == "Api":
                p = event["Properties"]
                routes.append(Route(name, p["Method"].upper(), p["Path"], p.get("Auth", {}).get("Authorizer")))
    return Application(functions, routes)


def model_parts(app: Application | None = None) -> dict[str, tuple[str, ...]]:
    """The parts of the model each function reads, as its handler module declares them (`MODEL_PARTS`)."""
    app = app or load_application()
    return {
        name: tuple(importlib.import_module(f"functions.{fn.code_uri.name}.app").MODEL_PARTS)
        for name, fn in app.functions.items()
        if not fn.image
    }


class _TemplateDumper(yaml.SafeDumper):
    pass


def _represent_tag(dumper: yaml.SafeDumper, tag: Tag) -> yaml.Node:
    if isinstance(tag.value, list):
        return dumper.represent_sequence(f"!{tag.tag}", tag.value)
    if isinstance(tag.value, dict):
        return dumper.represent_mapping(f"!{tag.tag}", tag.value)
    return dumper.represent_scalar(f"!{tag.tag}", str(tag.value))


_TemplateDumper.add_representer(Tag, _represent_tag)


def zip_template(into: Path, template: Path = TEMPLATE) -> Path:
    """The template without its image functions, written to `into` with every code path absolute:
    what `sam build` builds without Docker (the layer and the zip functions, as `sam deploy` ships them)."""
    doc = document(template)
    resources = doc["Resources"]
    for name in [n for n, r in resources.items() if r.get("Properties", {}).get("PackageType") == "Image"]:
        del resources[name]
    for res in resources.values():
        props, meta = res.get("Properties", {}), res.get("Metadata", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = str(ROOT / props[key])
        if "ContextPath" in meta:
            meta["ContextPath"] = str(ROOT / meta["ContextPath"])
    into.write_text(yaml.dump(doc, Dumper=_TemplateDumper, sort_keys=False))
    return into


def ref(value: Any) -> str:
    return str(value.value) if isinstance(value, Tag) else str(value)


def _literals(environment: dict[str, Any], defaults: dict[str, str]) -> dict[str, str]:
    """The environment variables with literal values, and those that are a parameter's default
    (``!Ref LikeCap``); other intrinsics are set by the local stack."""
    out = {}
    for name, value in environment.get("Variables", {}).items():
        if not isinstance(value, Tag):
            out[name] = str(value)
        elif value.tag == "Ref" and str(value.value) in defaults:
            out[name] = defaults[str(value.value)]
    return out


def table(name: str, template: Path = TEMPLATE) -> dict[str, Any]:
    """The properties of the DynamoDB table `name` in the template, as `create_table` takes them
    (its TTL attribute under ``TimeToLiveSpecification``, which is set apart)."""
    doc = document(template)
    props = doc["Resources"][name]["Properties"]
    keep = ("KeySchema", "AttributeDefinitions", "BillingMode", "LocalSecondaryIndexes", "TimeToLiveSpecification")
    return {k: v for k, v in props.items() if k in keep}
