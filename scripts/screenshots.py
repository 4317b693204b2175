"""`make screenshots`: every page of the site at a phone's size and a desktop's, served from the
model `make train` published (build/model-store), into docs/screenshots/ (the README shows one).

``python -m scripts.screenshots --online``: model.html's "On the site" section after two nights of
visitors (docs/screenshots/model-online.png). It starts `make demo` on free ports, and for each of
two nights sends `VISITORS` simulated visitors through the taste page in a real browser, each with
a shared link of three popular movies, then liking a few of the picks it shows (the higher a pick,
the likelier, from a seeded generator); then it runs TrainFunction's handler, as the schedule
would. The figures are what the site recorded of those clicks, nothing written by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from typing import Any

from devstack.servers import free_port, stop
from devstack.template import ROOT

OUT = ROOT / "docs" / "screenshots"
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
#: Each page, opened as a newcomer would open it, and what shows once it has loaded.
PAGES = {
    "index": ("/index.html?user=196", "#personalized-list li.movie"),
    "similar": ("/similar.html?movie=50", "#similar-list li.movie"),
    "taste": ("/taste.html?liked=50,172,181", '#picks-list[data-liked="50,172,181"]'),
    "model": ("/model.html", "#charts svg"),
}


VISITORS = 20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.screenshots", description=__doc__.splitlines()[0])
    p.add_argument("--online", action="store_true", help="model.html's online section after two nights of visitors")
    if p.parse_args(argv).online:
        return online()
    from playwright.sync_api import sync_playwright

    store = os.environ.get("MODEL_URI") or str(ROOT / "build" / "model-store")
    api_port, web_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "scripts.localstack", "serve", "--model-uri", store, "--api-port", str(api_port),
         "--web-port", str(web_port)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().startswith("READY"), "the local API did not start"
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            for size, viewport in SIZES.items():
                for name, (path, loaded) in PAGES.items():
                    context = browser.new_context(viewport=viewport, is_mobile=size == "phone")
                    page = context.new_page()
                    page.goto(f"http://127.0.0.1:{web_port}{path}")
                    page.wait_for_selector(loaded)
                    page.wait_for_timeout(300)  # the charts' and pictures' last paint
                    page.screenshot(path=str(OUT / f"{name}-{size}.png"))
                    context.close()
                    print(f"wrote {(OUT / f'{name}-{size}.png').relative_to(ROOT)}")
            browser.close()
    finally:
        stop(server)
    return 0


def online() -> int:
    from playwright.sync_api import sync_playwright

    from devstack import demo

    env = {**os.environ, "API_PORT": str(free_port()), "WEB_PORT": str(free_port()), "S3_PORT": str(free_port())}
    server = subprocess.Popen([sys.executable, "-m", "scripts.localstack", "demo"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        ready = next((line for line in server.stdout if line.startswith("READY")), "")
        assert ready, "the demo did not start"
        fields = dict(part.split("=", 1) for part in ready.split()[1:3])
        api, web = fields["api"], fields["web"]
        popular = [m["movie_id"] for m in _get(api, "/movies?limit=60")["items"]]
        rng = random.Random(20261206)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            for night in (1, 2):
                for _ in range(VISITORS):
                    _visit(browser, web, rng.sample(popular, 3), rng)
                answer = demo.retrain(f"http://127.0.0.1:{env['S3_PORT']}")
                print(f"night {night}: {answer.get('outcome')} {answer.get('serving')}", flush=True)
                deadline = time.monotonic() + 30
                while _get(api, "/model")["model_version"] != answer["serving"] and time.monotonic() < deadline:
                    time.sleep(0.5)
            page = browser.new_context(viewport=SIZES["desktop"]).new_page()
            page.goto(f"{web}/model.html")
            page.wait_for_selector("#online-section:not([hidden])")
            OUT.mkdir(parents=True, exist_ok=True)
            page.locator("#online-section").screenshot(path=str(OUT / "model-online.png"))
            print(f"wrote {(OUT / 'model-online.png').relative_to(ROOT)}: {page.locator('#online-note').inner_text()}")
            browser.close()
    finally:
        stop(server)
    return 0


def _visit(browser: Any, web: str, liked: list[int], rng: random.Random) -> None:
    """One visitor: a shared link's three likes, then a like of up to three picks, each pick from
    the top of the list with a chance of 1 / (its place + 1)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{web}/taste.html?liked={','.join(map(str, liked))}")
    page.wait_for_selector(f'#picks-list[data-liked="{",".join(map(str, liked))}"]')
    for _ in range(3):
        picks = page.locator("#picks-list li.movie")
        chosen = next((n for n in range(picks.count()) if rng.random() < 1 / (n + 2)), None)
        if chosen is None:
            continue
        movie = picks.nth(chosen).get_attribute("data-movie-id")
        picks.nth(chosen).locator("button.like").click()
        liked.append(int(movie or 0))
        page.wait_for_selector(f'#picks-list[data-liked="{",".join(map(str, liked))}"]')
    waiting = "(JSON.parse(localStorage.getItem('movie-recommender.pending') || '{}').shown || []).length"
    deadline = time.monotonic() + 15  # (not wait_for_function: the site's CSP forbids the eval it uses)
    while page.evaluate(waiting) and time.monotonic() < deadline:
        time.sleep(0.2)
    context.close()


def _get(api: str, path: str) -> Any:
    with urllib.request.urlopen(api + path, timeout=10) as response:
        return json.loads(response.read())


if __name__ == "__main__":
    sys.exit(main())
