"""The web UI in a real browser: Debian's headless Chromium, driven by Playwright
(``executable_path``; nothing is downloaded), against a real ``chronik serve`` on a
SQLite file. ``.ci/run`` installs Chromium.

``CHRONIK_UPDATE_SCREENSHOT=1`` also writes the overview's screenshot to docs/ui.png
(the README shows it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import chronik
from chronik import NewEvent

from ._cli import cli_env, run_cli
from ._server import Server, serve

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "browser-token"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with chronik.connect(f"sqlite:///{tmp_path / 'chronik.db'}") as store:
        store.append("order-1", [NewEvent("OrderPlaced", {"customer": "ada", "total": 30})])
        store.append("order-2", [NewEvent("OrderPlaced", {"customer": "bo", "total": -5})])
        store.append("order-1", [NewEvent("OrderPlaced", {"customer": "ada", "total": 12})])
    with serve(tmp_path, token=TOKEN) as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations
    yield page
    context.close()
    assert errors == [], errors


def test_the_pages_render(server: Server, page: Page) -> None:
    for path, heading in [
        ("/streams", "Streams"),
        ("/streams/order-1", "order-1"),
        ("/log", "The global log"),
        ("/projections", "Projections"),
        ("/travel", "Time travel"),
    ]:
        page.goto(server.url + path)
        expect(page.locator("h1")).to_contain_text(heading)
    page.goto(server.url + "/")
    expect(page.locator(".cards")).to_contain_text("3 events")
    expect(page.locator("#rate-chart canvas")).to_be_visible()  # uPlot drew the chart


def test_the_live_log_shows_another_process_append_within_a_second(server: Server, page: Page) -> None:
    page.goto(server.url + "/log")
    expect(page.locator("#live")).to_have_attribute("data-connected", "yes")
    appended = run_cli(
        "append",
        "order-77",
        "OrderPlaced",
        '{"customer": "cy", "total": 77}',
        "--url",
        server.store_url,
        cwd=server.db.parent,
    )
    assert appended.code == 0, appended.err
    start = time.monotonic()
    expect(page.locator("#live tr", has_text="order-77")).to_be_visible(timeout=1000)
    assert time.monotonic() - start < 1.0


def test_the_time_travel_slider_changes_the_state_shown(server: Server, page: Page) -> None:
    page.goto(server.url + "/travel/order/order-1")
    state = page.locator("#state pre.state")
    expect(state).to_contain_text('"total": 42')
    page.locator("#version").fill("1")
    expect(page.locator("#state .at-version")).to_have_text("1")
    expect(state).to_contain_text('"total": 30')
    expect(page.locator("#version-shown")).to_have_text("1")
    expect(page.locator("#state table.changes")).to_contain_text("total")
    page.locator("#version").fill("0")
    expect(state).to_contain_text('"total": 0')


def test_a_script_in_event_data_does_not_run(server: Server, page: Page) -> None:
    evil = "<script>window.pwned = 'data'</script><img src=x onerror=\"window.pwned = 'img'\">"
    with chronik.connect(server.store_url) as store:
        store.append("user-1", [NewEvent(evil, {"name": evil}, {"correlation_id": evil})])
    page.goto(server.url + "/log")
    expect(page.locator("#live")).to_have_attribute("data-connected", "yes")
    with chronik.connect(server.store_url) as store:
        store.append("user-2", [NewEvent("Registered", {"name": evil})])
    expect(page.locator("#live tr", has_text="user-2")).to_be_visible()
    # Each page load starts a new window: look after the live row, and on every page.
    assert page.evaluate("window.pwned") is None, "the live log ran the payload"
    for path in ("/log", "/streams/user-1", "/streams/user-2"):
        page.goto(server.url + path)
        expect(page.locator("main")).to_contain_text("<script>window.pwned")
        assert page.evaluate("window.pwned") is None, f"{path} ran the payload"


def test_a_write_without_the_token_is_refused(server: Server, page: Page) -> None:
    page.goto(server.url + "/projections")
    row = page.locator("tr[data-projection=spent]")
    expect(row).to_contain_text("never run")
    row.get_by_role("button", name="rebuild").click()
    expect(page.locator("#flash")).to_contain_text("refused (401)")
    expect(row).to_contain_text("never run")

    page.locator("#token").fill(TOKEN)
    row.get_by_role("button", name="rebuild").click()
    expect(page.locator("#flash")).to_contain_text("done")
    expect(page.locator("tr[data-projection=spent]")).to_contain_text("live")
    expect(page.locator("table.letters")).to_contain_text("order-2")


def test_a_stream_is_deleted_from_its_page_after_a_confirmation(server: Server, page: Page) -> None:
    asked: list[str] = []
    page.on("dialog", lambda dialog: asked.append(dialog.message))
    page.goto(server.url + "/streams/order-1")
    expect(page.locator(".stream-state")).to_contain_text("Live.")
    page.get_by_role("button", name="delete", exact=True).click()
    expect(page.locator("#flash")).to_contain_text("refused (401)")
    expect(page.locator(".stream-state")).to_contain_text("Live.")

    page.locator("#token").fill(TOKEN)
    page.get_by_role("button", name="delete", exact=True).click()
    expect(page.locator(".stream-state")).to_contain_text("Deleted")  # the page shows it, reloaded
    assert any("Delete order-1 (at version 2)?" in text for text in asked), asked
    page.get_by_role("button", name="delete for good").click()
    expect(page.locator(".stream-state")).to_contain_text("Deleted for good")
    expect(page.get_by_role("button", name="delete for good")).to_have_count(0)
    with chronik.connect(server.store_url) as store:
        assert store.stream_info("order-1").deleted == "hard"


def test_screenshot_of_the_demo(browser: Browser, tmp_path: Path) -> None:
    """The overview of the demo's store, as the README shows it."""
    demo = subprocess.run(
        [sys.executable, "-m", "chronik", "demo", "--db", "chronik.db"],
        cwd=tmp_path,
        env=cli_env(COLUMNS="100"),
        capture_output=True,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr.decode()
    assert "chronik serve --url sqlite:///chronik.db --app chronik.examples.app" in demo.stdout.decode()
    with serve(tmp_path, app="chronik.examples.app", relative=True) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        page = context.new_page()
        page.goto(server.url + "/")
        expect(page.locator("#rate-chart canvas")).to_be_visible()
        expect(page.locator("table.projections")).to_contain_text("orders")
        shot = tmp_path / "ui.png"
        page.screenshot(path=str(shot), full_page=False)
        context.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("CHRONIK_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, DOCS / "ui.png")
