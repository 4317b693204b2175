from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.localstack import Invoker, LocalApi, load_application

pytestmark = pytest.mark.template
ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam/bin/sam"


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_cfn_lint_reports_nothing() -> None:
    result = run(str(ROOT / ".venv/bin/cfn-lint"), "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes() -> None:
    result = run(str(SAM), "validate", "--lint", "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build_succeeds_without_docker(tmp_path: Path) -> None:
    result = run(str(SAM), "build", "--build-dir", str(tmp_path / "build"), "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr
    layer = tmp_path / "build/RecsysLayer/python"
    assert (layer / "recsys/artifact.py").exists()
    assert next(layer.glob("numpy-2.2.*.dist-info"), None) is not None


def test_every_template_route_is_served_locally(model_store: Path) -> None:
    app = load_application()
    assert {(r.method, r.path) for r in app.routes} == {
        ("GET", "/recommendations/{user_id}"), ("GET", "/model"), ("GET", "/users/{user_id}/history"),
        ("GET", "/users"), ("GET", "/movies/{movie_id}/similar"), ("GET", "/movies"),
    }  # fmt: skip
    local = LocalApi(app, Invoker(app, {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*"}), "*")
    for route in app.routes:
        path = route.path.replace("{user_id}", "1").replace("{movie_id}", "1")
        status, headers, _ = local.handle(route.method, path, {}, b"")
        assert status == 200, (route, status)
        assert headers["Access-Control-Allow-Origin"] == "*"
    assert local.handle("GET", "/nowhere", {}, b"")[0] == 403  # as API Gateway answers
