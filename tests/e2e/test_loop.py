"""The loop in a real browser: a visitor's likes on the taste page reach the table, TrainFunction's
handler retrains on them against moto, and the API serves the new model, which counts them."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.invoker import LambdaContext
from functions.train import app as train_app
from tests import data
from tests.e2e.stack import local_api, local_aws
from tests.e2e.test_site import ARGS, SHOTS, eventually, like_on_taste_page, stored_likes

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loop(moto_endpoint: str, checkerboard_dir: Path) -> Iterator[dict[str, Any]]:
    """A model in moto's S3, trained on the checkerboard uploaded there; a feedback table; the local
    API and site serving that model, looking for a newer one every second."""
    with local_aws(moto_endpoint, [checkerboard_dir / "u.data", checkerboard_dir / "u.item"], "loop") as aws:
        assert data.train(checkerboard_dir, aws["MODEL_URI"]) == 0
        with local_api(aws) as served:
            yield {**aws, **served}


def _model(api: str) -> dict[str, Any]:
    with urllib.request.urlopen(api + "/model", timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_likes_on_the_taste_page_train_the_next_model_the_api_serves(loop: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        before = _model(loop["api"])
        assert before["data"]["visitors"] == {"visitors": 0, "likes": 0}
        # GIVEN a visitor who likes three movies on the taste page
        visitor = like_on_taste_page(page, loop["web"], [13, 14, 15])
        # THEN the likes reach the table
        env = {"FEEDBACK_TABLE": loop["FEEDBACK_TABLE"], "AWS_ENDPOINT_URL_DYNAMODB": loop["AWS_ENDPOINT_URL"]}
        eventually(lambda: stored_likes(env, visitor) == [13, 14, 15])
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "loop-1-likes.png"), full_page=True)
        # WHEN TrainFunction's handler runs, as the schedule starts it (the gate is tested elsewhere)
        os.environ.update(MAX_VALIDATION_DROP="0.9", VISITOR_BAND="1")
        answer = train_app.lambda_handler({"source": "aws.scheduler"}, LambdaContext("TrainFunction"))
        assert answer["outcome"] == "published" and answer["previous"] == before["model_version"]
        # THEN the API swaps to the new model, which counts the visitor's likes
        eventually(lambda: _model(loop["api"])["model_version"] == answer["serving"])
        assert _model(loop["api"])["data"]["visitors"]["likes"] == 3
        # AND the model page says so
        page.goto(loop["web"] + "/model.html")
        page.wait_for_selector("#facts:has-text('3 likes from 1 visitor')")
        assert answer["serving"] in page.locator("#facts").inner_text()
        page.screenshot(path=str(SHOTS / "loop-2-retrained.png"), full_page=True)
        browser.close()
        assert errors == []
