from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devstack.docker import pin
from devstack.gateway import LocalApi
from devstack.invoker import Invoker
from devstack.template import load_application

pytestmark = pytest.mark.template
ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam/bin/sam"


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
    ("E9007", 'POWERTOOLS_TRACER_CAPTURE_RESPONSE: "false"', 'POWERTOOLS_TRACER_CAPTURE_RESPONSE: "true"'),
    ("E9008", '"Null": {"s3:if-none-match": "true"}', '"Null": {"s3:if-none-match": "false"}'),
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


def _deployed_stages(template: Path) -> list[str]:
    """Stage names the template deploys after the real SAM transform (SAM CLI's translator)."""
    result = run(str(ROOT / ".venv-sam/bin/python"), str(ROOT / "tests/template/sam_stages.py"), str(template))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_after_the_sam_transform_only_the_throttled_stage_is_deployed(tmp_path: Path) -> None:
    assert _deployed_stages(ROOT / "template.yaml") == ["Prod"]
    # without OpenApiVersion, the transform adds SAM's default "Stage" stage (what E9006 prevents)
    weakened = tmp_path / "template.yaml"
    weakened.write_text((ROOT / "template.yaml").read_text().replace('      OpenApiVersion: "3.0.1"\n', ""))
    assert _deployed_stages(weakened) == ["Prod", "Stage"]


def test_sam_validate_lint_passes() -> None:
    result = run(str(SAM), "validate", "--lint", "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build_succeeds_without_docker(tmp_path: Path) -> None:
    result = run(str(SAM), "build", "--build-dir", str(tmp_path / "build"), "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr
    layer = tmp_path / "build/RecsysLayer/python"
    assert (layer / "recsys/artifact.py").exists()
    pinned = pin(ROOT / "layers/recsys/requirements.txt", "numpy")
    assert (layer / f"numpy-{pinned.removeprefix('numpy==')}.dist-info").is_dir()
    # the layer serves without lightfm, scipy or pandas
    assert not any(next(layer.glob(f"{name}*"), None) for name in ("lightfm", "scipy", "pandas"))


def test_every_template_route_is_served_locally(model_store: Path) -> None:
    app = load_application()
    paths = {"/recommendations/{user_id}", "/model", "/users/{user_id}/history", "/users", "/movies/{movie_id}/similar",
             "/movies"}  # fmt: skip
    posts = {("POST", "/recommendations"), ("OPTIONS", "/recommendations")}
    assert {(r.method, r.path) for r in app.routes} == {(m, p) for p in paths for m in ("GET", "OPTIONS")} | posts
    local = LocalApi(app, Invoker(app, {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*"}), "*")
    for route in app.routes:
        path = route.path.replace("{user_id}", "1").replace("{movie_id}", "1")
        body = b'{"liked": [1]}' if route.method == "POST" else b""
        status, headers, _ = local.handle(route.method, path, {"Content-Type": "application/json"}, body)
        assert status == (204 if route.method == "OPTIONS" else 200), (route, status)
        assert headers["Access-Control-Allow-Origin"] == "*"
    assert local.handle("GET", "/nowhere", {}, b"")[0] == 403  # as API Gateway answers
