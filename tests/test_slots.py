"""Input slots: a method that needs a new kind of input is one file. Here a throwaway method, declared inside
this test, asks for an existing slot and a new one; with no edit anywhere else its widget appears in its tab,
the tab's API endpoint accepts the value, and the registry's checks run it on the slot's example value. Also the
house rules the slots make possible: no tab names a method, no method file grows past 250 lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from demos.api_examples import HOUSE
from demos.common import Hub
from methods.core.registry import list_methods, register, unregister
from methods.core.slots import IMAGE, PROMPT, EditInputs, Slot
from methods.core.spec import Condition, FloatParam, Method, MethodOutput, Paper, RunContext, Strategy
from tests.conftest import tiny_settings
from tests.helpers import served
from tests.test_registry import (
    check_declarations,
    check_missing_inputs_become_a_skipped_cell,
    check_runs_with_defaults_and_restores_shared_state,
)

ROOT = Path(__file__).resolve().parents[1]
RED = (200, 30, 30)
STYLE = Slot(
    "style_image",
    "image",
    "Style image",
    "a style image (upload one under “Style image”)",
    example=lambda scene: Image.new("RGB", scene.size, RED),
)


class StyleBlend(Method):
    """A test double, not an editing method: it mixes the source photo with the style image, so the test can see
    that the value it sent through the new slot is the one the method received. It declares an existing slot
    (the source image) and a new one (the style image), and is registered only while a test runs."""

    name = "test_style_blend"
    label = "Style blend (slot test)"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper("A throwaway method for the input-slot test", 2024, "https://example.org/slot-test")
    params = (FloatParam("alpha", 0.5, 0.0, 1.0),)
    requires = (IMAGE, STYLE)
    optional = (PROMPT,)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        style = inputs[STYLE].convert("RGB").resize(inputs.image.size)
        return MethodOutput(Image.blend(inputs.image.convert("RGB"), style, params["alpha"]))


@pytest.fixture
def throwaway() -> Iterator[type[Method]]:
    register(StyleBlend)
    try:
        yield StyleBlend
    finally:
        unregister(StyleBlend.name)


def _blocks_with(demo: gr.Blocks, predicate: Any) -> list[Any]:
    return [block for block in demo.blocks.values() if predicate(block)]


def test_a_new_slot_gets_its_widget_in_the_tab(backbone, throwaway) -> None:
    from demos import text

    with gr.Blocks() as demo:
        text.create_demo(Hub(backbone))
    widgets = _blocks_with(demo, lambda b: getattr(b, "elem_id", None) == "text-style_image")
    assert len(widgets) == 1 and isinstance(widgets[0], gr.Image) and widgets[0].label == "Style image"
    labels = [b.label for b in _blocks_with(demo, lambda b: isinstance(b, gr.Accordion))]
    assert "Style image — used by Style blend (slot test)" in labels
    names = [p["parameter_name"] for p in demo.get_api_info()["named_endpoints"]["/text"]["parameters"]]
    assert names[: names.index("methods")] == [
        "image",
        "prompt",
        "source_prompt",
        "instruction",
        "negative_prompt",
        "style_image",
    ]


def test_the_api_accepts_the_new_slot(backbone, throwaway, tmp_path: Path) -> None:
    style = tmp_path / "style.png"
    Image.new("RGB", (64, 64), RED).save(style)
    with served(backbone, tiny_settings()) as (url, _):
        client = Client(url, verbose=False)
        ask = {"image": HOUSE, "prompt": "a red house", "methods": [StyleBlend.name], "steps": 1, "api_name": "/text"}
        gallery, records, _, _, _ = client.predict(**ask, style_image=handle_file(str(style)))
        row = records["data"][0]
        assert row[:2] == [StyleBlend.name, "ok"], row
        out = np.asarray(Image.open(gallery[1]["image"]).convert("RGB"), dtype=np.float32)
        photo = np.asarray(Hub(backbone).source_image(str(ROOT / "assets/house.png")), dtype=np.float32)
        np.testing.assert_allclose(out, 0.5 * photo + 0.5 * np.array(RED, dtype=np.float32), atol=1.0)
        _, records, _, _, _ = client.predict(**ask)  # no style image: a skipped cell with the slot's sentence
        assert records["data"][0][1] == "skipped" and "needs a style image" in records["data"][0][7]


def test_the_registry_checks_run_it_with_the_slot_example(backbone, throwaway) -> None:
    from methods.core.examples import example_inputs

    assert example_inputs(Condition.TEXT, backbone)[STYLE].getpixel((0, 0)) == RED
    check_declarations(throwaway)
    check_runs_with_defaults_and_restores_shared_state(backbone, throwaway)
    check_missing_inputs_become_a_skipped_cell(backbone, throwaway)


def test_every_method_gets_its_slots_from_the_examples_and_its_tab(backbone) -> None:
    from demos import tabs
    from demos.common import further_slots
    from demos.slots import widget_for
    from methods.core.examples import example_inputs

    for tab in (module.TAB for module in tabs()):
        inputs = example_inputs(tab.condition, backbone)
        for method in list_methods(tab.condition):
            assert not method.missing_inputs(inputs), (method.name, method.missing_inputs(inputs))
        for slot, users in further_slots(tab):
            assert widget_for(slot) and users  # a registered widget, or the default of its kind


def test_no_tab_names_a_method() -> None:
    words = {m.name for m in list_methods()} | {m.label for m in list_methods()}
    for path in sorted((ROOT / "demos").glob("*.py")):
        source = path.read_text()
        named = sorted(w for w in words if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", source))
        assert not named, f"{path.name} names {named}"


def test_no_method_file_exceeds_250_lines() -> None:
    long = {p.name: n for p in (ROOT / "methods").glob("*.py") if (n := len(p.read_text().splitlines())) > 250}
    assert not long, long
