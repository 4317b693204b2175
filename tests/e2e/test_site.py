"""The website in a real browser (Debian chromium via Playwright) against the local stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from recsys.schemas import VISITOR_ID
from tests import data
from tests.conftest import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def stack(model_store: Path, feedback_env: dict[str, str]) -> Iterator[dict[str, str]]:
    api_port, web_port = free_port(), free_port()
    SHOTS.mkdir(exist_ok=True)
    log = (SHOTS / "localstack.log").open("w")  # the server's logs, for when a test here fails
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.localstack", "serve", "--model-uri", str(model_store),
         "--api-port", str(api_port), "--web-port", str(web_port),
         "--dynamodb-endpoint", feedback_env["AWS_ENDPOINT_URL_DYNAMODB"],
         "--feedback-table", feedback_env["FEEDBACK_TABLE"]],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().startswith("READY")
    urls = {"api": f"http://127.0.0.1:{api_port}", "web": f"http://127.0.0.1:{web_port}"}
    urllib.request.urlopen(urls["api"] + "/model", timeout=10).read()
    yield urls
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()
    log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
    yield pg
    SHOTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def test_recommender_page_shows_history_and_both_lists(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack["web"] + "/index.html")
    button = page.locator("#picker button").first
    user_id = int(button.get_attribute("data-user-id"))
    button.click()
    page.wait_for_selector("#personalized-list li.movie, #status.status-error")
    assert page.locator("#status.status-error").count() == 0, page.locator("#status").inner_text()
    assert page.locator("#history-list li.movie").count() > 0
    # both lists hold 10 movies, or every movie the user has not rated where fewer are left
    unrated = data.GROUPS * data.ITEMS_PER_GROUP - len(data.rated_by(user_id))
    assert page.locator("#personalized-list li.movie").count() == min(10, unrated)
    assert page.locator("#popular-list li.movie").count() == min(10, unrated)
    shown = page.locator("#personalized-list li.movie, #popular-list li.movie").evaluate_all(
        "els => els.map(e => Number(e.dataset.movieId))"
    )
    assert not set(shown) & data.rated_by(user_id)
    ours = set(page.locator("#personalized-list li.movie").evaluate_all("els => els.map(e => e.dataset.movieId)"))
    pop = set(page.locator("#popular-list li.movie").evaluate_all("els => els.map(e => e.dataset.movieId)"))
    assert page.locator("#personalized-list .badge-both").count() == len(ours & pop)
    assert page.errors == []


def test_deep_link_and_unknown_user_message(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack["web"] + "/index.html?user=424242")
    page.wait_for_selector("#status.status-warn")
    assert "not in the model" in page.locator("#status").inner_text()
    assert page.errors == []


def test_similar_page_search_choose_and_pivot(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack["web"] + "/similar.html")
    page.fill("#query", "movie 1")
    page.wait_for_selector("#suggestions [role=option]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#similar-list li.movie")
    first = page.locator("#similar-list li.movie").first
    target = first.get_attribute("data-movie-id")
    first.locator("a").click()
    # an arrow function, not an expression: Playwright polls an expression through eval, which the CSP forbids
    page.wait_for_function(
        f"() => document.querySelector('#chosen .meta-line').textContent.includes('Movie {target} ')"
    )
    assert page.errors == []


def test_model_page_shows_metrics_and_charts(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack["web"] + "/model.html")
    page.wait_for_selector("#metrics tbody tr")
    assert "precision@10" in page.locator("#metrics").inner_text()
    assert "EASE" in page.locator("#metrics thead").inner_text()
    # served, its 2 parts, the item-item model with order ignored, popularity, EASE, served ÷ popularity
    assert page.locator("#metrics tbody tr").first.locator("td").count() == 7
    assert "order ignored" in page.locator("#metrics thead").inner_text()
    assert "item-item" in page.locator("#facts").inner_text() and "Order" in page.locator("#facts").inner_text()
    assert "Served to visitors" in page.locator("#facts").inner_text()  # their own shares
    assert "per_user_latest_likes" in page.locator("#facts").inner_text()
    assert page.locator("#fold-in tbody tr").count() == 5  # served and LightFM, folded in and trained in; popularity
    # the replay of held-out likes: frozen at training, and each served as it arrives; LightFM alone, both ways
    assert page.locator("#replay-section").is_visible() and page.locator("#replay tbody tr").count() == 4
    assert "held-out likes" in page.locator("#replay-note").inner_text()
    assert "refolded with each like" in page.locator("#replay tbody").inner_text()
    assert page.locator("#charts svg").count() == 2
    assert page.errors == []


def test_api_down_shows_a_message_not_a_blank_page(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    page.route("**/127.0.0.1:" + stack["api"].rsplit(":", 1)[1] + "/**", lambda route: route.abort())
    page.goto(stack["web"] + "/index.html?user=1")
    page.wait_for_selector("#status.status-error")
    assert "cannot be reached" in page.locator("#status").inner_text()
    assert page.locator("#results").is_hidden()


def _picks(page) -> list[int]:  # type: ignore[no-untyped-def]
    return page.locator("#picks-list li.movie").evaluate_all("els => els.map(e => Number(e.dataset.movieId))")


def test_taste_page_picks_follow_the_visitors_likes(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a visitor the model never saw, on the taste page
    page.goto(stack["web"] + "/taste.html")
    page.wait_for_selector("#picks-list li.movie")
    assert page.locator("#picks-note").inner_text() == "popular, until you like a movie"
    # WHEN they search and like five movies of group 1 (13..17)
    liked = list(range(13, 18))
    for movie_id in liked:
        page.fill("#query", f"movie {movie_id}")
        page.locator(f'#results button[data-like="{movie_id}"]').click()
    page.wait_for_selector('#picks-list[data-liked="13,14,15,16,17"]')
    # THEN the picks are personalized, lead with the rest of group 1, and never a liked movie
    picks = _picks(page)
    assert page.locator("#picks-note").inner_text() == "personalized"
    assert set(picks[:7]) == set(range(18, 25)) and not set(picks) & set(liked)
    assert page.locator("#picks-list .because").count() > 0
    assert "liked=13%2C14%2C15%2C16%2C17" in page.url or "liked=13,14,15,16,17" in page.url
    # WHEN one like is removed THEN the picks change and may include it again
    page.locator('#likes-list li[data-movie-id="17"] button.remove').click()
    page.wait_for_selector('#picks-list[data-liked="13,14,15,16"]')
    assert _picks(page) != picks and 17 in _picks(page)
    # AND the likes outlive a reload (this browser only) and travel in the share link
    page.reload()
    page.wait_for_selector('#picks-list[data-liked="13,14,15,16"]')
    assert page.locator("#likes-list li.movie").count() == 4
    assert page.locator("#share").input_value().endswith("/taste.html?liked=13,14,15,16")  # readable, as the README
    page.locator("#clear").click()
    page.wait_for_selector('#picks-list[data-liked=""]')
    assert page.errors == []


def like_on_taste_page(page, web: str, movies: list[int]) -> str:  # type: ignore[no-untyped-def]
    """Open the taste page, like `movies` through its search, wait for the picks to answer them;
    the browser's visitor id."""
    page.goto(web + "/taste.html")
    page.wait_for_selector("#picks-list li.movie")
    for movie_id in movies:
        page.fill("#query", f"movie {movie_id}")
        page.locator(f'#results button[data-like="{movie_id}"]').click()
    page.wait_for_selector(f'#picks-list[data-liked="{",".join(map(str, movies))}"]')
    visitor: str = page.evaluate("localStorage.getItem('movie-recommender.visitor')")
    return visitor


def stored_likes(feedback_env: dict[str, str], visitor: str) -> list[int]:
    """The movies the feedback table holds as liked by `visitor`."""
    client = boto3.client("dynamodb", endpoint_url=feedback_env["AWS_ENDPOINT_URL_DYNAMODB"], region_name="us-east-1")
    items = client.query(TableName=feedback_env["FEEDBACK_TABLE"], KeyConditionExpression="visitor_id = :v",
                         ExpressionAttributeValues={":v": {"S": visitor}}, ConsistentRead=True)["Items"]  # fmt: skip
    return sorted(int(i["movie_id"]["N"]) for i in items if int(i["movie_id"]["N"]) >= 0)


def eventually(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until `check()` holds (a background send has landed), or fail with its last state."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never held"
        time.sleep(0.1)


def test_taste_page_likes_reach_the_table_and_forget_me_deletes_them(  # type: ignore[no-untyped-def]
    stack: dict[str, str], feedback_env: dict[str, str], page
) -> None:
    # GIVEN a visitor on the taste page, who likes three movies
    visitor = like_on_taste_page(page, stack["web"], [13, 14, 15])
    # THEN the table holds them under the browser's random id, and nothing else identifies the visitor
    assert re.fullmatch(VISITOR_ID, visitor)
    eventually(lambda: stored_likes(feedback_env, visitor) == [13, 14, 15])
    # WHEN one is removed THEN the table follows
    page.locator('#likes-list li[data-movie-id="14"] button.remove').click()
    eventually(lambda: stored_likes(feedback_env, visitor) == [13, 15])
    # WHEN they press "forget me" THEN it asks first, and Cancel deletes nothing
    page.locator("#forget").click()
    assert page.locator("#forget-confirm").is_visible()
    page.locator("#forget-no").click()
    assert page.locator("#forget-confirm").is_hidden() and stored_likes(feedback_env, visitor) == [13, 15]
    # WHEN they press it and say yes THEN the table and the browser hold nothing of them
    page.locator("#forget").click()
    page.locator("#forget-yes").click()
    page.wait_for_selector("#forget-status:has-text('Forgotten: 2 likes deleted')")
    assert stored_likes(feedback_env, visitor) == []
    assert page.evaluate("[localStorage.getItem('movie-recommender.visitor'), localStorage.getItem('movie-recommender.likes')]") == [None, "[]"]  # noqa: E501
    assert page.locator("#likes-list li.movie").count() == 0 and page.errors == []
    # AND that message belongs to the past once they like a movie again
    page.fill("#query", "movie 16")
    page.locator('#results button[data-like="16"]').click()
    page.wait_for_selector('#picks-list[data-liked="16"]')
    assert page.locator("#forget-status").is_hidden()


def test_forget_me_waits_for_a_like_on_its_way_and_deletes_it_too(  # type: ignore[no-untyped-def]
    stack: dict[str, str], feedback_env: dict[str, str], page
) -> None:
    # GIVEN a visitor with one like stored, whose next like is still on its way to the API
    visitor = like_on_taste_page(page, stack["web"], [13])
    eventually(lambda: stored_likes(feedback_env, visitor) == [13])
    held: list[Any] = []
    page.route("**/feedback", lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    page.fill("#query", "movie 14")
    page.locator('#results button[data-like="14"]').click()
    # (the send under way may be of the picks shown before it, the like queued behind: forget waits for both)
    eventually(lambda: bool(page.evaluate("1")) and len(held) >= 1)
    # WHEN they press "forget me" while it is held, and then it goes through
    page.locator("#forget").click()
    page.locator("#forget-yes").click()
    page.evaluate("new Promise(r => setTimeout(r, 200))")  # forget had the chance to run ahead, and must not
    assert stored_likes(feedback_env, visitor) == [13]
    held[0].continue_()
    page.unroute("**/feedback")  # and any held after it goes on
    # THEN forget waited for it: both likes were deleted, and the table holds none of them
    page.wait_for_selector("#forget-status:has-text('Forgotten: 2 likes deleted')")
    assert stored_likes(feedback_env, visitor) == [] and page.errors == []


def test_a_shared_link_joins_the_visitors_likes_and_tells_the_server(  # type: ignore[no-untyped-def]
    stack: dict[str, str], feedback_env: dict[str, str], page
) -> None:
    # GIVEN a visitor with likes of their own
    visitor = like_on_taste_page(page, stack["web"], [13, 14])
    # WHEN they open a shared link, with an id past the API's range among its ids
    page.goto(stack["web"] + "/taste.html?liked=14,15,16,2147483648,99999999999")
    # THEN the link's likes join theirs (none replaced), the picks answer all of them without an error
    page.wait_for_selector('#picks-list[data-liked="13,14,15,16"]')
    assert page.locator("#status.status-error").count() == 0 and page.errors == []
    # AND the server was told of the new ones, under the same visitor
    eventually(lambda: stored_likes(feedback_env, visitor) == [13, 14, 15, 16])


def test_taste_page_works_while_the_feedback_api_fails_and_sends_later(  # type: ignore[no-untyped-def]
    stack: dict[str, str], feedback_env: dict[str, str], page
) -> None:
    # GIVEN a feedback API that cannot be reached
    page.route("**/feedback", lambda route: route.abort())
    page.goto(stack["web"] + "/taste.html")
    page.wait_for_selector("#picks-list li.movie")
    # WHEN the visitor likes movies THEN the picks still follow them
    for movie_id in (1, 2):
        page.fill("#query", f"movie {movie_id}")
        page.locator(f'#results button[data-like="{movie_id}"]').click()
    page.wait_for_selector('#picks-list[data-liked="1,2"]')
    assert not {1, 2} & set(_picks(page))
    visitor = page.evaluate("localStorage.getItem('movie-recommender.visitor')")
    assert stored_likes(feedback_env, visitor) == [] and page.locator("#status.status-error").count() == 0
    # WHEN the API is back and the visitor comes again THEN what waited is sent
    page.unroute("**/feedback")
    page.reload()
    eventually(lambda: stored_likes(feedback_env, visitor) == [1, 2])
    waiting = page.evaluate("JSON.parse(localStorage.getItem('movie-recommender.pending'))")
    assert (waiting["like"], waiting["unlike"], waiting["picked"]) == ([], [], [])


def test_taste_page_from_a_shared_link_on_a_phone(stack: dict[str, str], browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack["web"] + "/taste.html?liked=1,2,3,999999")
    page.wait_for_selector('#picks-list[data-liked="1,2,3"]')
    page.wait_for_function("() => document.querySelector('#likes-list li.movie a').textContent.startsWith('Movie 1 ')")
    assert "not in the model" in page.locator("#status").inner_text()
    assert not {1, 2, 3} & set(_picks(page))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "taste-phone.png"), full_page=True)
    context.close()
    assert errors == []


def test_similar_cards_have_like_toggles_that_feed_the_taste_page(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack["web"] + "/similar.html?movie=1")
    page.wait_for_selector("#similar-list li.movie")
    first = page.locator("#similar-list li.movie").first
    movie_id = first.get_attribute("data-movie-id")
    first.locator("button.like").click()
    assert first.locator("button.like").get_attribute("aria-pressed") == "true"
    page.goto(stack["web"] + "/taste.html")
    page.wait_for_selector(f'#picks-list[data-liked="{movie_id}"]')
    assert page.errors == []


def test_a_like_on_the_similar_page_says_where_it_was_shown_and_picks_shown_are_counted_on_leaving(  # type: ignore[no-untyped-def]
    stack: dict[str, str], feedback_env: dict[str, str], page
) -> None:
    version = json.loads(urllib.request.urlopen(stack["api"] + "/model", timeout=10).read())["model_version"]
    # GIVEN a visitor who opens a movie's similar movies, and likes the third of them
    page.goto(stack["web"] + "/similar.html?movie=1")
    page.wait_for_selector("#similar-list li.movie")
    shown = page.locator("#similar-list li.movie").count()
    third = page.locator("#similar-list li.movie").nth(2)
    movie = int(third.get_attribute("data-movie-id"))
    third.locator("button.like").click()
    visitor = page.evaluate("localStorage.getItem('movie-recommender.visitor')")
    eventually(lambda: stored_likes(feedback_env, visitor) == [movie])
    # THEN the like carries its list, the model and its place, and the picks went with it
    stored = _stored(feedback_env, visitor, movie)
    assert {k: stored[k] for k in ("list", "model_version", "position")} == {
        "list": {"S": "similar"}, "model_version": {"S": version}, "position": {"N": "3"}}
    assert _stored(feedback_env, visitor, -3)[f"shown:{version}:similar"] == {"N": str(shown)}
    # WHEN they pivot to another movie and leave the page at once, before the counts' own send
    pivot = page.locator("#similar-list li.movie").first.get_attribute("data-movie-id")
    page.locator("#similar-list li.movie a").first.click()
    page.wait_for_url(f"**/similar.html?movie={pivot}")
    page.wait_for_selector('#similar-list:not([aria-busy="true"]) li.movie')
    page.goto(stack["web"] + "/index.html")
    # THEN the new picks are counted all the same (each once: the first movie's shown again are not)
    counted = lambda: int(_stored(feedback_env, visitor, -3)[f"shown:{version}:similar"]["N"])  # noqa: E731
    eventually(lambda: counted() > shown)
    assert counted() <= 2 * shown and page.errors == []


def _stored(feedback_env: dict[str, str], visitor: str, movie: int) -> dict[str, Any]:
    client = boto3.client("dynamodb", endpoint_url=feedback_env["AWS_ENDPOINT_URL_DYNAMODB"], region_name="us-east-1")
    key = {"visitor_id": {"S": visitor}, "movie_id": {"N": str(movie)}}
    item: dict[str, Any] = client.get_item(TableName=feedback_env["FEEDBACK_TABLE"], Key=key,
                                           ConsistentRead=True).get("Item", {})  # fmt: skip
    return item


def test_the_site_is_served_under_the_production_csp(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    # GIVEN the CSP CloudFront serves, with the local API as the one place to connect to
    with urllib.request.urlopen(stack["web"] + "/taste.html", timeout=10) as response:
        csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and f"connect-src 'self' {stack['api']}" in csp
    # WHEN a page calls the API THEN it works, and the browser reports no violation
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(stack["web"] + "/taste.html?liked=1")
    page.wait_for_selector('#picks-list[data-liked="1"]')
    assert violations == [] and page.errors == []
    # AND a request the policy does not allow is blocked (the policy really is enforced)
    blocked = page.evaluate("fetch('http://127.0.0.2:9/').then(() => 'allowed', () => 'blocked')")
    assert blocked == "blocked" and any("connect-src" in v for v in violations)


PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1366, "height": 900}
#: Every page, and what shows once it has loaded.
PAGES = {
    "index": ("/index.html?user=1", "#personalized-list li.movie"),
    "similar": ("/similar.html?movie=13", "#similar-list li.movie"),
    "taste": ("/taste.html?liked=13,14,15", '#picks-list[data-liked="13,14,15"]'),
    "model": ("/model.html", "#charts svg"),
}


@pytest.mark.parametrize("size", ["phone", "desktop"])
@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_fits_a_phone_and_a_desktop(stack: dict[str, str], browser, name: str, size: str) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a page at a phone's width or a desktop's
    context = browser.new_context(viewport=PHONE if size == "phone" else DESKTOP, is_mobile=size == "phone")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    path, loaded = PAGES[name]
    # WHEN it has loaded
    page.goto(stack["web"] + path)
    page.wait_for_selector(loaded)
    (SHOTS / "pages").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "pages" / f"{name}-{size}.png"), full_page=True)
    # THEN nothing scrolls sideways (a wide table scrolls inside its own box) and nothing failed
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    context.close()
    assert width[0] <= width[1] and errors == []


def test_tapping_a_sample_user_on_a_phone_brings_the_results_into_view(  # type: ignore[no-untyped-def]
    stack: dict[str, str], browser
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    page = context.new_page()
    page.goto(stack["web"] + "/index.html")
    page.locator("#picker button").nth(5).click()
    page.wait_for_selector("#personalized-list li.movie")
    top = page.evaluate("document.getElementById('results').getBoundingClientRect().top")
    context.close()
    assert -2 <= top < PHONE["height"] / 2  # at the top of the screen, to a fraction of a pixel


def test_the_pages_words_say_what_the_model_does(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    card = json.loads(urllib.request.urlopen(stack["api"] + "/model", timeout=10).read())
    shares = card["metrics"]["served"]["shares"]
    page.goto(stack["web"] + "/index.html?user=1")
    page.wait_for_selector("#personalized-list li.movie")
    blend = page.locator("#blend").inner_text()
    # the lead names LightFM only where it has a share, and its share where both parts have one
    assert ("LightFM" in blend) == (shares["lightfm"] > 0)
    if 0 < shares["lightfm"] < 1:
        assert f"LightFM {shares['lightfm']:g}" in blend
    # another person's reasons say "they"; the status counts picks, not "LightFM picks"
    reasons = page.locator("#personalized-list .because").all_inner_texts()
    assert reasons and all(t.startswith("Because they liked") for t in reasons)
    assert "personalized picks are also popular picks" in page.locator("#status").inner_text()
    assert page.errors == []


def test_a_cut_list_of_likes_says_so_and_shows_more(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    # GIVEN pages of 5 likes (the API's real answers, asked for 5 at a time)
    def smaller_pages(route) -> None:  # type: ignore[no-untyped-def]
        route.continue_(url=route.request.url.replace("k=20", "k=5"))

    page.route("**/users/*/history*", smaller_pages)
    page.goto(stack["web"] + "/index.html?user=1")
    page.wait_for_selector("#history-list li.movie")
    liked = len([m for m in data.rated_by(1) if data.group_of_item(m) == data.group_of_user(1)])
    # THEN the count says the list is cut, and "show more" brings the rest, page by page
    assert page.locator("#history-total").inner_text() == f"5 of {liked}, newest first"
    while page.locator("#history-more").is_visible():
        shown = page.locator("#history-list li.movie").count()
        page.locator("#history-more").click()
        page.wait_for_function(f"() => document.querySelectorAll('#history-list li.movie').length > {shown}")
    ids = page.locator("#history-list li.movie").evaluate_all("els => els.map(e => Number(e.dataset.movieId))")
    assert len(ids) == len(set(ids)) == liked
    assert page.locator("#history-total").inner_text() == f"{liked} movies, newest first" and page.errors == []


def test_back_and_forward_step_through_every_pivot(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    def chosen() -> str:
        return page.locator("#chosen .meta-line").first.inner_text()

    page.goto(stack["web"] + "/similar.html?movie=13")
    page.wait_for_function("() => document.querySelector('#chosen .meta-line')?.textContent.includes('Movie 13 ')")
    visited = ["13"]
    for _ in range(2):  # pivot twice, to the first similar movie each time
        first = page.locator("#similar-list li.movie").first
        visited.append(first.get_attribute("data-movie-id"))
        first.locator("a").click()
        page.wait_for_function(f"() => document.querySelector('#chosen .meta-line').textContent"
                               f".includes('Movie {visited[-1]} ')")
    # WHEN Back is pressed twice THEN each press returns to the movie before
    for movie in reversed(visited[:-1]):
        page.go_back()
        page.wait_for_function(f"() => document.querySelector('#chosen .meta-line').textContent"
                               f".includes('Movie {movie} ')")
        assert page.url.endswith(f"?movie={movie}")
    # AND Forward goes on again
    page.go_forward()
    page.wait_for_function(f"() => document.querySelector('#chosen .meta-line').textContent"
                           f".includes('Movie {visited[1]} ')")
    assert f"Movie {visited[1]} " in chosen() and page.errors == []


def test_search_forgives_a_typo_and_says_did_you_mean(stack: dict[str, str], page) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack["web"] + "/similar.html")
    page.fill("#query", "move 13")  # "movie 13" with a letter dropped
    page.wait_for_selector("#suggestions .did-you-mean")
    options = page.locator("#suggestions [role=option]").all_inner_texts()
    assert options and options[0].startswith("Movie 13")
    page.fill("#query", "movie13")  # a missing space is still a match
    page.wait_for_selector("#suggestions .did-you-mean", state="detached")
    assert page.locator("#suggestions [role=option]").first.inner_text().startswith("Movie 13") and page.errors == []


@pytest.mark.parametrize(("path", "words"), [
    ("/index.html?user=99999999999999999999", "No user has the id 99999999999999999999"),
    ("/index.html?user=abc", "A user id is a whole number"),
    ("/similar.html?movie=abc", '"abc" is not a movie id'),
    ("/similar.html?movie=424242", "No movie with id 424242 is in the model"),
])  # fmt: skip
def test_errors_speak_to_people_and_no_page_is_blank(stack: dict[str, str], page, path: str, words: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack["web"] + path)
    # the answer, not the "Loading…" line the page shows first (an info status) while the API is asked
    page.wait_for_selector("#status:not([hidden]):not(.status-info)")
    text = page.locator("#status").inner_text()
    assert words in text and "Input should" not in text and "path segment" not in text
    assert [e for e in page.errors if "the server responded with a status of 404" not in e] == []  # the API's 404
