from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import py_compile
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.docker import pin
from devstack.gateway import LocalApi
from devstack.invoker import Invoker
from devstack.sam import ship
from devstack.template import load_application, zip_template

pytestmark = pytest.mark.template
ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam/bin/sam"
#: The zip functions, each behind its alias "live".
FUNCTIONS = ("RecommendFunction", "HistoryFunction", "SimilarFunction", "FeedbackFunction", "EventsFunction")


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    # sam build looks for the runtime's python3.13 on PATH: the SAM venv's comes first, whatever
    # pyenv or the system would pick
    env = {**os.environ, "PATH": f"{ROOT / '.venv-sam/bin'}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_cfn_lint_reports_nothing() -> None:
    result = run(str(ROOT / ".venv/bin/cfn-lint"), "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


RULES = ROOT / "tests/template/cfn_rules"


def test_hardening_rules_find_nothing_in_the_template() -> None:
    result = run(str(ROOT / ".venv/bin/cfn-lint"), "template.yaml", "-a", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


WEAKENINGS = [  # (rule, text in template.yaml, replaced by; the first occurrence only)
    ("E9001", "RestrictPublicBuckets: true", "RestrictPublicBuckets: false"),
    ("E9002", "Principal: {Service: cloudfront.amazonaws.com}", 'Principal: "*"'),
    (
        "E9003",
        'Action: s3:GetObject\n              Resource: !Sub "arn:',
        'Action: "s3:*"\n              Resource: !Sub "arn:',
    ),
    ("E9004", '/${ModelPrefix}/latest.json"', '/*"'),
    ("E9005", "    Default: 0\n    MinValue: 0\n", "    Default: 30\n    MinValue: 0\n"),  # 30 < 6 methods x 30
    ("E9005", "    Default: 0\n    MinValue: 0\n", "    Default: 0\n    MinValue: 1\n"),  # cannot be turned off
    ("E9006", '      OpenApiVersion: "3.0.1"\n', ""),
    ("E9008", '"Null": {"s3:if-none-match": "true"}', '"Null": {"s3:if-none-match": "false"}'),
    ("E9009", "Action: [dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem, dynamodb:ConditionCheckItem,\n"
     "                       dynamodb:Query]", 'Action: "dynamodb:*"'),
    # the events API may not add to a table the way the feedback API counts shown picks
    ("E9009", "Action: [dynamodb:PutItem, dynamodb:DeleteItem, dynamodb:Query]\n"
     "              Resource: !GetAtt EventsTable.Arn",
     "Action: [dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem, dynamodb:Query]\n"
     "              Resource: !GetAtt EventsTable.Arn"),
    ("E9009", "Action: dynamodb:Scan", "Action: [dynamodb:Scan, dynamodb:DeleteItem]"),
    ("E9009", "Action: dynamodb:Scan\n              Resource: [!GetAtt FeedbackTable.Arn, !GetAtt EventsTable.Arn]",
     "Action: dynamodb:Scan\n              Resource: \"*\""),
    ("E9009", '- "arn:${AWS::Partition}:s3:::${Path}*"', '- "arn:${AWS::Partition}:s3:::*"'),
    # a reader of the events that could write them, or read the whole table, or the visitors'
    ("E9009", 'Action: dynamodb:Query\n              Resource: !Sub "${EventsTable.Arn}/index/by_time"',
     'Action: [dynamodb:Query, dynamodb:PutItem]\n              Resource: !Sub "${EventsTable.Arn}/index/by_time"'),
    ("E9009", 'Resource: !Sub "${EventsTable.Arn}/index/by_time"', "Resource: !GetAtt EventsTable.Arn"),
    ("E9009", 'Resource: !Sub "${EventsTable.Arn}/index/by_time"', 'Resource: !Sub "${FeedbackTable.Arn}/index/*"'),
    # the signed events API writing the visitors' table as well
    ("E9009", "dynamodb:Query]\n              Resource: !GetAtt EventsTable.Arn",
     "dynamodb:Query]\n              Resource: [!GetAtt EventsTable.Arn, !GetAtt FeedbackTable.Arn]"),
    # without the exemption, multipart uploads (CreateMultipartUpload, UploadPart) would be denied
    ("E9008", ', "Bool": {"s3:ObjectCreationOperation": "true"}', ""),
]


@pytest.mark.parametrize(("rule", "old", "new"), WEAKENINGS, ids=[f"{w[0]}-{i}" for i, w in enumerate(WEAKENINGS)])
def test_each_hardening_rule_catches_its_weakening(tmp_path: Path, rule: str, old: str, new: str) -> None:
    text = (ROOT / "template.yaml").read_text()
    assert old in text, f"the {rule} fixture no longer matches template.yaml"
    weakened = tmp_path / "template.yaml"
    weakened.write_text(text.replace(old, new, 1))
    result = run(str(ROOT / ".venv/bin/cfn-lint"), str(weakened), "-a", str(RULES))
    assert result.returncode != 0 and rule in result.stdout, result.stdout + result.stderr


def _transformed(template: Path) -> dict[str, Any]:
    """Stage names and Stage ids after the real SAM transform (SAM CLI's translator), and what the
    WAF association depends on."""
    result = run(str(ROOT / ".venv-sam/bin/python"), str(ROOT / "tests/template/sam_stages.py"), str(template))
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return found


def _deployed_stages(template: Path) -> list[str]:
    """Stage names the template deploys after the real SAM transform."""
    names: list[str] = _transformed(template)["names"]
    return names


def test_the_waf_association_waits_for_the_stage_it_names() -> None:
    # its ResourceArn is built from the stage's name, so only DependsOn orders it after SAM's stage
    found = _transformed(ROOT / "template.yaml")
    assert found["firewall_depends_on"] in (["ApiProdStage"], "ApiProdStage")
    assert "ApiProdStage" in found["stage_ids"]


@pytest.mark.parametrize(("limit", "accepted"), [("0", True), ("10", True), ("2000", True), ("1", False),
                                                  ("9", False), ("09", False), ("-5", False)])  # fmt: skip
def test_the_waf_rate_limit_is_off_or_at_least_wafs_minimum(limit: str, accepted: bool) -> None:
    import re

    import yaml

    class Tagged(yaml.SafeLoader):
        pass

    Tagged.add_multi_constructor("!", lambda loader, suffix, node: None)
    parameter = yaml.load((ROOT / "template.yaml").read_text(), Tagged)["Parameters"]["FeedbackRateLimit"]
    assert bool(re.fullmatch(parameter["AllowedPattern"], limit)) is accepted


def test_after_the_sam_transform_only_the_throttled_stage_is_deployed(tmp_path: Path) -> None:
    assert _deployed_stages(ROOT / "template.yaml") == ["Prod"]
    # without OpenApiVersion, the transform adds SAM's default "Stage" stage (what E9006 prevents)
    weakened = tmp_path / "template.yaml"
    weakened.write_text((ROOT / "template.yaml").read_text().replace('      OpenApiVersion: "3.0.1"\n', ""))
    assert _deployed_stages(weakened) == ["Prod", "Stage"]


def _versions(template: Path, layer_zip: str = "s3://packaged/layer-a.zip", **parameters: str) -> dict[str, str]:
    """Each function's version after the real SAM transform: logical id -> its resolved description."""
    script = ROOT / "tests/template/sam_versions.py"
    result = run(str(ROOT / ".venv-sam/bin/python"), str(script), str(template), json.dumps(parameters), layer_zip)
    assert result.returncode == 0, result.stderr
    versions: dict[str, str] = json.loads(result.stdout.splitlines()[-1])
    return versions


TRAINS = ("TrainFunction",)  # an image: a new image is a new ImageUri, which SAM's hash sees


@pytest.mark.parametrize(("change", "functions"), [
    ({"layer_zip": "s3://packaged/layer-b.zip"}, FUNCTIONS),  # a new layer content, as `sam package` names it
    ({"SnapStart": "on"}, FUNCTIONS),
    ({"ModelPrefix": "recommender-v2"}, FUNCTIONS + TRAINS),
    ({"AllowedOrigin": "https://movies.example"}, FUNCTIONS),
    ({"RatingsUri": "s3://ratings/ml-10m/"}, TRAINS),
    ({"MaxValidationDrop": "0.1"}, TRAINS),
    ({"LikeCap": "100"}, ("FeedbackFunction", *TRAINS)),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else "")  # fmt: skip
def test_every_change_publishes_a_new_version_behind_live(change: dict[str, str], functions: tuple[str, ...]) -> None:
    # GIVEN each function's version as deployed, and as deployed after one change
    before = _versions(ROOT / "template.yaml")
    after = _versions(ROOT / "template.yaml", **change)
    assert len(before) == len(after) == len(FUNCTIONS + TRAINS)
    # THEN every function it concerns gets a new version: a new logical id (the layer, which SAM's
    # hash sees), or a new description, which CloudFormation cannot update in place and so replaces
    # (AWS::Lambda::Version Description: "Update requires: Replacement")
    for function in functions:
        old = next((k, v) for k, v in before.items() if k.startswith(function))
        new = next((k, v) for k, v in after.items() if k.startswith(function))
        assert old != new, (function, change)
        if "layer_zip" in change:
            assert old[0] != new[0], "a new layer content must be a new version id"


def test_sam_validate_lint_passes() -> None:
    result = run(str(SAM), "validate", "--lint", "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of the template's zip functions and layer, without Docker: the folders `sam deploy`
    zips (TrainFunction is an image, which Docker builds: tests/e2e/test_sam.py)."""
    folder = tmp_path_factory.mktemp("sam")
    template = zip_template(folder / "template.yaml")
    out = folder / "build"
    result = run(str(SAM), "build", "--template-file", str(template), "--build-dir", str(out), "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_sam_build_succeeds_without_docker(built: Path) -> None:
    layer = built / "RecsysLayer/python"
    assert (layer / "recsys/artifact.py").exists()
    pinned = pin(ROOT / "layers/recsys/requirements.txt", "numpy")
    assert (layer / f"numpy-{pinned.removeprefix('numpy==')}.dist-info").is_dir()
    # the layer serves without lightfm, scipy or pandas
    assert not any(next(layer.glob(f"{name}*"), None) for name in ("lightfm", "scipy", "pandas"))


def _stale_bytecode(root: Path) -> list[str]:
    """The .py files under `root` whose .pyc Python would not use there (PEP 552): missing, of
    another Python, timestamp-based with another mtime or size, or hash-based with another hash."""
    stale = []
    for source in root.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.exists():
            stale.append(f"{source.relative_to(root)}: no .pyc")
            continue
        header = cached.read_bytes()[:16]
        flags = int.from_bytes(header[4:8], "little")
        if header[:4] != importlib.util.MAGIC_NUMBER:
            stale.append(f"{source.relative_to(root)}: .pyc of another Python")
        elif flags & 0b01 and flags & 0b10:  # hash-based, checked: the source's hash must match
            if header[8:16] != importlib.util.source_hash(source.read_bytes()):
                stale.append(f"{source.relative_to(root)}: checked hash differs")
        elif not flags & 0b01:  # timestamp-based: mtime and size must match the unpacked source
            st = source.stat()
            if header[8:16] != ((int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
                                + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")):  # fmt: skip
                stale.append(f"{source.relative_to(root)}: timestamp .pyc, stale under the zip's dates")
    return sorted(stale)


def test_what_sam_deploy_ships_has_bytecode_python_uses(built: Path, tmp_path: Path) -> None:
    # GIVEN the layer and every function, zipped by SAM's own code and unpacked as Lambda lays them out
    opt = ship(built / "RecsysLayer", tmp_path / "opt")
    tasks = [ship(built / name, tmp_path / "var/task" / name) for name in FUNCTIONS]
    # THEN every module has a .pyc that Python accepts there, whatever the 1980 dates
    assert len(list(opt.rglob("*.py"))) > 400  # numpy and recsys: the check saw them
    for root in (opt, *tasks):
        assert _stale_bytecode(root) == [], root
    # AND the check does catch what pip and SAM's own builder write: timestamp .pyc
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "m.py").write_text("x = 1\n")
    py_compile.compile(str(plain / "m.py"), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    assert _stale_bytecode(ship(plain, tmp_path / "plain-task")) == [
        "m.py: timestamp .pyc, stale under the zip's dates"
    ]


def test_every_template_route_is_served_locally(
    model_store: Path, feedback_env: dict[str, str], events_env: dict[str, str]
) -> None:
    app = load_application()
    paths = {"/recommendations/{user_id}", "/model", "/users/{user_id}/history", "/users", "/movies/{movie_id}/similar",
             "/movies"}  # fmt: skip
    posts = {(m, p) for p in ("/recommendations", "/feedback") for m in ("POST", "OPTIONS")}
    deletes = {(m, "/feedback/{visitor_id}") for m in ("DELETE", "OPTIONS")}
    signed = {("POST", "/events"), ("DELETE", "/users/{user_id}/events")}  # server to server: no preflight
    routes = {(m, p) for p in paths for m in ("GET", "OPTIONS")} | posts | deletes | signed
    assert {(r.method, r.path) for r in app.routes} == routes
    assert {(r.method, r.path) for r in app.routes if r.auth == "AWS_IAM"} == signed
    env = {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*", **feedback_env, **events_env}
    local = LocalApi(app, Invoker(app, env), "*")
    visitor = "0b7e3f8a-5d2c-4e1f-9a6b-3c8d7e2f1a40"
    feedback = json.dumps({"visitor_id": visitor, "like": [1]}).encode()
    at = dt.datetime.now(dt.UTC).isoformat()
    events = json.dumps({"user_id": 1, "events": [{"movie_id": 1, "kind": "like", "at": at}]}).encode()
    bodies = {"/recommendations": b'{"liked": [1]}', "/feedback": feedback, "/events": events}
    for route in app.routes:
        path = route.path.replace("{user_id}", "1").replace("{movie_id}", "1").replace("{visitor_id}", visitor)
        body = bodies[route.path] if route.method == "POST" else b""
        headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}
        if route.auth == "AWS_IAM":
            assert local.handle(route.method, path, headers, body)[0] == 403  # unsigned
            request = AWSRequest(method=route.method, url=f"http://127.0.0.1{path}", data=body, headers=headers)
            SigV4Auth(Credentials("testing", "testing"), "execute-api", "us-east-1").add_auth(request)
            headers = dict(request.headers.items())
        status, answer_headers, _ = local.handle(route.method, path, headers, body)
        assert status == (204 if route.method == "OPTIONS" else 200), (route, status)
        assert answer_headers["Access-Control-Allow-Origin"] == "*"
    assert local.handle("GET", "/nowhere", {}, b"")[0] == 403  # as API Gateway answers
