"""`make screenshots`: every page of the site at a phone's size and a desktop's, served from the
model `make train` published (build/model-store), into docs/screenshots/ (the README shows one)."""

from __future__ import annotations

import os
import subprocess
import sys

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


def main() -> int:
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


if __name__ == "__main__":
    sys.exit(main())
