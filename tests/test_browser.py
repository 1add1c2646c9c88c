"""A person's view: Debian Chromium driven by Playwright opens the app, visits every tab, and runs one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from methods.core.spec import Condition
from tests.conftest import tiny_settings
from tests.helpers import served

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
    with served(backbone, tiny_settings()) as (address, _):
        yield address


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


def _click_fraction(page, selector: str, fx: float, fy: float) -> None:
    """Click at a fraction of the picture as drawn (Gradio centres it in the img box, never upscaled)."""
    image = page.locator(f"{selector} img").first
    image.wait_for(state="visible", timeout=30_000)
    page.wait_for_function(f"() => document.querySelector('{selector} img').naturalWidth > 0", timeout=30_000)
    box = image.bounding_box()
    natural_w, natural_h = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = min(box["width"] / natural_w, box["height"] / natural_h, 1.0)
    left = box["x"] + (box["width"] - natural_w * scale) / 2
    top = box["y"] + (box["height"] - natural_h * scale) / 2
    page.mouse.click(left + fx * natural_w * scale, top + fy * natural_h * scale)


def _wait_until(condition, seconds: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the UI did not update in time"
        time.sleep(0.2)


def test_clicks_place_drag_points_and_layout_boxes(url: str) -> None:
    import json

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name=Condition.DRAG.title, exact=True).click()
        page.locator("#drag-image input[type=file]").set_input_files(str(ASSETS / "house.png"))
        points = page.get_by_label("Drag points (JSON)")
        page.wait_for_timeout(1500)
        _click_fraction(page, "#drag-canvas", 0.25, 0.5)
        page.wait_for_timeout(700)
        _click_fraction(page, "#drag-canvas", 0.75, 0.5)
        _wait_until(lambda: points.input_value() not in {"", "[]"})
        (hx, hy, tx, ty) = json.loads(points.input_value())[0]
        assert abs(hx - 0.25) < 0.05 and abs(tx - 0.75) < 0.05 and abs(hy - 0.5) < 0.05 and abs(ty - 0.5) < 0.05

        page.get_by_text("Drag regions — used by", exact=False).first.click()  # the REGIONS slot's accordion
        regions = page.get_by_label("Drag regions (JSON)")
        for fx, fy in ((0.2, 0.4), (0.4, 0.6), (0.5, 0.4), (0.7, 0.6)):  # handle corners, then target corners
            _click_fraction(page, "#drag-regions", fx, fy)
            page.wait_for_timeout(700)
        _wait_until(lambda: regions.input_value() not in {"", "[]"})
        pair, clicked = json.loads(regions.input_value())[0], (0.2, 0.4, 0.4, 0.6, 0.5, 0.4, 0.7, 0.6)
        assert len(pair) == 8 and all(abs(a - b) < 0.05 for a, b in zip(pair, clicked, strict=True))

        page.get_by_role("tab", name=Condition.LAYOUT.title, exact=True).click()
        page.get_by_label("Phrase for the next box").fill("a blue boat")
        _click_fraction(page, "#layout-canvas", 0.2, 0.3)
        page.wait_for_timeout(700)
        _click_fraction(page, "#layout-canvas", 0.6, 0.8)
        boxes_box = page.get_by_label("Boxes (JSON)")
        _wait_until(lambda: "a blue boat" in boxes_box.input_value())
        boxes = json.loads(boxes_box.input_value())
        assert boxes[-1]["phrase"] == "a blue boat"
        x0, y0, x1, y1 = boxes[-1]["box"]
        assert abs(x0 - 0.2) < 0.05 and abs(y0 - 0.3) < 0.05 and abs(x1 - 0.6) < 0.05 and abs(y1 - 0.8) < 0.05
        browser.close()
