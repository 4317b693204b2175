"""The loop in a real browser: a visitor's likes on the taste page reach the table, TrainFunction's
handler retrains on them against moto, and the API serves the new model, which counts them; and a
like of a pick the page showed carries where it was shown, so that the model page then says how
often the old model's picks were liked."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
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


def _item(env: dict[str, str], visitor: str, movie: int) -> dict[str, Any]:
    client = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"], region_name="us-east-1")
    key = {"visitor_id": {"S": visitor}, "movie_id": {"N": str(movie)}}
    item: dict[str, Any] = client.get_item(TableName=env["FEEDBACK_TABLE"], Key=key, ConsistentRead=True)["Item"]
    return item


def _waiting_shown(page: Any) -> int:
    """Groups of shown picks the page has not sent yet."""
    script = "(JSON.parse(localStorage.getItem('movie-recommender.pending') || '{}').shown || []).length"
    return int(page.evaluate(script))


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
        # WHEN they like the first of the picks the page shows them
        old = before["model_version"]
        pick = page.locator("#picks-list li.movie").first
        movie = int(pick.get_attribute("data-movie-id") or 0)
        pick.locator("button.like").click()
        # THEN the like says where it was shown: the taste list, the serving model, first place
        eventually(lambda: movie in stored_likes(env, visitor))
        stored = _item(env, visitor, movie)
        assert (stored["list"]["S"], stored["model_version"]["S"], stored["position"]["N"]) == ("taste", old, "1")
        # AND the picks the page showed are counted once each, per list: the popular ones before the
        # first like, then the taste ones
        eventually(lambda: _waiting_shown(page) == 0)
        counts = {k.split(":")[2]: int(v["N"]) for k, v in _item(env, visitor, -3).items() if k.startswith("shown:")}
        assert set(counts) == {"popularity", "taste"} and counts["popularity"] == 10 and counts["taste"] > 10
        # WHEN TrainFunction's handler runs, as the schedule starts it (the gate is tested elsewhere)
        os.environ.update(MAX_VALIDATION_DROP="0.9", VISITOR_BAND="1")
        answer = train_app.lambda_handler({"source": "aws.scheduler"}, LambdaContext("TrainFunction"))
        assert answer["outcome"] == "published" and answer["previous"] == before["model_version"]
        # THEN the API swaps to the new model, which counts the visitor's likes
        eventually(lambda: _model(loop["api"])["model_version"] == answer["serving"])
        served = _model(loop["api"])
        assert served["data"]["visitors"]["likes"] == 4
        # AND the new model knows how the old one's picks did: one liked of the taste picks shown
        (row,) = served["metrics"]["online"]["versions"]
        assert row["model_version"] == old and (row["picks"], row["liked"]) == (sum(counts.values()), 1)
        assert {k: (m["picks"], m["liked"]) for k, m in row["lists"].items()} == {
            "popularity": (counts["popularity"], 0), "taste": (counts["taste"], 1)}
        # AND the model page says so
        page.goto(loop["web"] + "/model.html")
        page.wait_for_selector("#facts:has-text('4 likes from 1 visitor')")
        assert answer["serving"] in page.locator("#facts").inner_text()
        page.wait_for_selector("#online-section:not([hidden])")
        rows = [r.inner_text().split("\t") for r in page.locator("#online tbody tr").all()]
        taste = f"{100 / counts['taste']:.1f}%"
        assert [old, "all lists", str(sum(counts.values())), "1"] == rows[0][:4]
        assert ["", "your taste", str(counts["taste"]), "1", taste] == rows[2][:5]
        assert "No picks" not in page.locator("#online-note").inner_text()
        page.screenshot(path=str(SHOTS / "loop-2-retrained.png"), full_page=True)
        page.locator("#online-section").screenshot(path=str(SHOTS / "loop-3-online.png"))
        browser.close()
        assert errors == []
