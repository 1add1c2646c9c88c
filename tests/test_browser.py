"""A person's view: Debian Chromium driven by Playwright opens the app, visits every tab, and runs one."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import build_app
from demos.common import Hub
from methods.core.spec import Condition
from tests.conftest import tiny_settings

CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ASSETS = Path(__file__).resolve().parents[1] / "assets"

pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (scripts/test.sh installs it with apt-get)",
)


@pytest.fixture(scope="module")
def url(backbone) -> Iterator[str]:
    app = build_app(Hub(backbone), tiny_settings())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def test_visit_every_tab_and_run_text(url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name=Condition.TEXT.title).wait_for(timeout=60_000)
        banner = page.locator(".hub-banner:visible")
        assert "Tiny backbone: random weights" in banner.first.inner_text()
        for condition in Condition:
            page.get_by_role("tab", name=condition.title, exact=True).click()
            page.locator(f"#{condition.value}-run").wait_for(state="visible", timeout=30_000)
            assert "random weights" in banner.first.inner_text(), f"no banner on the {condition.value} tab"
        page.get_by_role("tab", name=Condition.TEXT.title, exact=True).click()
        page.locator("#text-image input[type=file]").set_input_files(str(ASSETS / "house.png"))
        page.get_by_label("Target prompt").fill("a house in the snow")
        page.locator("#text-run").click()
        gallery = page.locator("#text-gallery")
        gallery.get_by_text("SDEdit ·").first.wait_for(timeout=120_000)
        page.screenshot(path=os.environ.get("HUB_SCREENSHOT", str(tmp_path / "text-tab.png")), full_page=True)
        assert gallery.locator("img").count() >= 2
        browser.close()
