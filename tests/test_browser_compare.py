"""Comparing like a power user, in Chromium: the grid fills cell by cell, Stop keeps what finished, a 2×3 sweep
shows labelled rows and columns, the compare slider shows two pictures, and the history restores a run."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from methods.core.spec import Condition
from tests.conftest import tiny_settings
from tests.helpers import served
from tests.test_browser import ARGS, ASSETS, CHROMIUM, pytestmark  # noqa: F401 - the same skip without chromium


@pytest.fixture(scope="module")
def page(backbone) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with served(backbone, tiny_settings()) as (address, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1100})
        tab.goto(address, wait_until="domcontentloaded")
        tab.get_by_role("tab", name=Condition.TEXT.title, exact=True).wait_for(timeout=60_000)
        tab.locator("#text-image input[type=file]").set_input_files(str(ASSETS / "house.png"))
        tab.get_by_label("Target prompt").fill("a house in the snow")
        tab.get_by_label("Source prompt", exact=False).fill("a house")
        yield tab
        browser.close()


def _choose(page, names: list[str]) -> None:
    """Tick exactly the methods whose labels start with ``names`` in the text tab's method box."""
    box = page.locator("#text-methods")
    for label in box.locator("label").all():
        text = label.inner_text()
        wanted = any(text.startswith(name) for name in names)
        checkbox = label.locator("input[type=checkbox]")
        if checkbox.is_checked() != wanted:
            label.click()


def _count(page, selector: str) -> int:
    return page.locator(selector).count()


def _wait(condition, seconds: float = 120.0, step: float = 0.1) -> float:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the page did not update in time"
        time.sleep(step)
    return time.monotonic()


def _set_steps(page, value: int) -> None:
    field = page.locator("#text-steps input[type=number]").first
    field.fill(str(value))
    field.press("Enter")


def _fill(page, selector: str, text: str) -> None:
    """Type into a text box of an accordion just opened: Gradio mounts its contents on the first open, and a value
    typed while it mounts is lost, so type again until the box keeps it."""
    field = page.locator(f"{selector} textarea, {selector} input").first
    for _ in range(10):
        field.fill(text)
        field.press("Tab")
        page.wait_for_timeout(400)
        if field.input_value() == text:
            return
    raise AssertionError(f"{selector} does not keep {text!r}: {field.input_value()!r}")


CELLS = "#text-gallery .thumbnail-item"
HISTORY = "#text-history .thumbnail-item"


def test_cells_stream_in_and_stop_keeps_them(page) -> None:
    # Three methods at 20 steps: the first cell must show while the others still run.
    _choose(page, ["SDEdit", "Prompt-to-Prompt", "MasaCtrl"])
    _set_steps(page, 20)
    history_before = _count(page, HISTORY)
    page.locator("#text-run").click()
    first = _wait(lambda: _count(page, CELLS) >= 2)
    assert _count(page, HISTORY) == history_before, "the run had already ended when its first cell showed"
    _wait(lambda: _count(page, HISTORY) > history_before, seconds=300)
    assert _count(page, CELLS) >= 4  # condition + three methods
    assert time.monotonic() >= first

    # Again, and press Stop once the first cell is in: the finished cells stay, the rest never run.
    page.locator("#text-run").click()
    _wait(lambda: _count(page, HISTORY) == history_before + 1 and _count(page, CELLS) <= 2, seconds=30)
    _wait(lambda: _count(page, CELLS) >= 2)
    page.locator("#text-stop").click()
    _wait(lambda: _count(page, HISTORY) > history_before + 1, seconds=300)
    kept = _count(page, CELLS)
    assert 2 <= kept < 4, f"{kept} cells after Stop"
    assert "SDEdit" in page.locator("#text-gallery").inner_text()
    _set_steps(page, 4)


def test_slider_shows_two_pictures(page) -> None:
    slider = page.locator("#text-slider")
    slider.scroll_into_view_if_needed()
    _wait(lambda: slider.locator("img").count() >= 2, seconds=30)
    sources = {img.get_attribute("src") for img in slider.locator("img").all()}
    assert len(sources) >= 2


def test_history_restores_a_run(page) -> None:
    _choose(page, ["SDEdit"])
    prompt = page.get_by_label("Target prompt")
    before = _count(page, HISTORY)
    prompt.fill("a red house")
    page.locator("#text-run").click()
    _wait(lambda: _count(page, HISTORY) > before)
    prompt.fill("a blue house")
    page.locator("#text-run").click()
    _wait(lambda: _count(page, HISTORY) > before + 1)
    page.locator(HISTORY).nth(1).click()  # newest first: the red run is second
    _wait(lambda: prompt.input_value() == "a red house", seconds=20)


def test_sweep_renders_labelled_rows_and_columns(page, tmp_path) -> None:
    # The sweep's default axes: methods across (X), seeds down (Y).
    page.get_by_text("X/Y sweep", exact=False).first.click()
    for box, text in (("x", "sdedit, ledits_pp, masactrl"), ("y", "0, 1")):
        _fill(page, f"#text-sweep-{box}-values", text)
    page.wait_for_timeout(500)
    page.locator("#text-sweep-run").click()
    table = page.locator("#text-sweep-grid table.hub-sweep")
    try:
        _wait(lambda: table.count() > 0 and table.get_attribute("data-state") == "done", seconds=120)
    except AssertionError:
        page.screenshot(path=str(tmp_path / "sweep.png"), full_page=True)
        raise
    assert table.locator("img").count() == 6
    columns = [th.inner_text() for th in table.locator("thead th").all()]
    assert columns == ["SDEdit", "LEDITS++", "MasaCtrl"], columns
    rows = [th.inner_text() for th in table.locator("tbody th").all()]
    assert rows == ["seed 0", "seed 1"], rows
    assert page.locator("#text-sweep-cells .thumbnail-item").count() == 6
