"""Layout tab: boxes drawn by two clicks, each with its phrase; generate, or edit inside the boxes."""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from demos.common import Hub, Tab, add_examples, banner, build_tab, on_draw, prompt_text
from demos.widgets import dump, for_display, parse_json_list, relative_click
from methods.core.images import draw_boxes
from methods.core.limits import MAX_BOXES, is_number
from methods.core.slots import BOXES, IMAGE, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import Box, Condition, EditInputs, InputError

CONDITION = Condition.LAYOUT
BOX_EXAMPLE = '[{"phrase": "a red car", "box": [0.1, 0.5, 0.5, 0.9]}] (x0, y0, x1, y1 in 0..1)'


def parse_boxes(text: str | None) -> list[Box]:
    boxes = []
    for item in parse_json_list(text, "boxes", BOX_EXAMPLE, cap=MAX_BOXES):
        corners = item.get("box") if isinstance(item, dict) else None
        shaped = isinstance(corners, list) and len(corners) == 4 and all(is_number(v) for v in corners)
        if not (shaped and isinstance(item.get("phrase"), str)):
            raise InputError(f"Each box needs a phrase and four numbers, e.g. {BOX_EXAMPLE}.")
        phrase = item["phrase"].strip()
        x0, y0, x1, y1 = (min(max(float(v), 0.0), 1.0) for v in corners)  # JSON parsing already refused NaN
        if not phrase:
            raise InputError("Every box needs a phrase saying what goes inside it.")
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        if x1 - x0 < 0.02 or y1 - y0 < 0.02:
            raise InputError(f"The box for “{phrase}” is too small; click two opposite corners further apart.")
        boxes.append(Box(x0, y0, x1, y1, phrase))
    return boxes


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    inputs.boxes = parse_boxes(values["boxes"])
    if not inputs.boxes:
        raise InputError("Please draw at least one box: type its phrase, then click two corners on the canvas.")
    inputs.prompt = (values["prompt"] or "").strip() or ", ".join(b.phrase for b in inputs.boxes)
    inputs.negative_prompt = (values["negative_prompt"] or "").strip()
    return inputs


def condition_cell(hub: Hub, inputs: EditInputs) -> tuple[Any, str]:
    canvas = inputs.image if inputs.image is not None else Image.new("RGB", hub.working_size(), (235, 235, 235))
    phrases = ", ".join(f"[{b.phrase}]" for b in inputs.boxes)
    return draw_boxes(canvas, inputs.boxes), f"Layout: {phrases} · {prompt_text(inputs)}"


TAB = Tab(CONDITION, (IMAGE, BOXES, PROMPT, NEGATIVE_PROMPT), build_inputs, condition_cell)

# Example rows by widget name, boxes placed by looking at the photos (x0, y0, x1, y1 in 0..1): the photos first
# (assets/README.md; the cup replaced and a croissant on the free table top right; a moon in the clear sky right
# of the rocket, above the lightning rod), then boxes on a blank canvas.
EXAMPLES: list[dict[str, Any]] = [
    {
        "image": "assets/coffee.jpg",
        "boxes": dump(
            [
                {"phrase": "a cup of green tea", "box": [0.28, 0.03, 0.7, 0.72]},
                {"phrase": "a croissant", "box": [0.72, 0.02, 0.98, 0.3]},
            ]
        ),
        "prompt": "a cup of green tea and a croissant on a wooden table",
        "negative_prompt": "",
    },
    {
        "image": "assets/rocket.jpg",
        "boxes": dump([{"phrase": "a full moon", "box": [0.72, 0.05, 0.86, 0.26]}]),
        "prompt": "a rocket on the launch pad at dusk under a full moon",
        "negative_prompt": "",
    },
    {
        "image": None,
        "boxes": dump(
            [
                {"phrase": "a red car", "box": [0.1, 0.55, 0.55, 0.9]},
                {"phrase": "a green tree", "box": [0.6, 0.1, 0.95, 0.8]},
            ]
        ),
        "prompt": "a street, photo",
        "negative_prompt": "",
    },
]


def create_demo(hub: Hub) -> None:
    banner(hub)
    size = hub.backbone.size
    blank = Image.new("RGB", (size, size), (235, 235, 235))
    with gr.Row():
        image = gr.Image(
            type="pil",
            label="Source photo (optional: for editing inside the boxes)",
            sources=["upload"],
            elem_id="layout-image",
        )
        canvas = gr.Image(
            type="pil",
            value=for_display(blank),
            interactive=False,
            label="Click two corners to add a box",
            height=360,
            elem_id="layout-canvas",
        )
    with gr.Row():
        phrase = gr.Textbox(label="Phrase for the next box", value="a red car")
        boxes = gr.Textbox(label="Boxes (JSON)", value="[]", lines=3)
        with gr.Column():
            clear = gr.Button("Clear boxes")
            prompt = gr.Textbox(value="", label="Prompt (optional; default: the phrases)")
            negative_prompt = gr.Textbox(value="", label="Negative prompt (optional)")
    corner = gr.State(None)

    def background(source: Any) -> Image.Image:
        return for_display(hub.source_image(source, required=False) if source is not None else blank)

    def redraw(text: str, source: Any) -> Image.Image:
        try:
            return draw_boxes(background(source), parse_boxes(text))
        except InputError:
            return background(source)

    def click(text: str, pending: Any, words: str, source: Any, evt: gr.SelectData) -> tuple[str, Any]:
        x, y = relative_click(evt, background(source).size)
        if pending is None:
            return text, (x, y)
        items = parse_json_list(text, "boxes", BOX_EXAMPLE)
        items.append(
            {
                "phrase": words.strip() or "an object",
                "box": [
                    round(min(pending[0], x), 4),
                    round(min(pending[1], y), 4),
                    round(max(pending[0], x), 4),
                    round(max(pending[1], y), 4),
                ],
            }
        )
        return dump(items), None

    on_draw(canvas.select, click, [boxes, corner, phrase, image], [boxes, corner])
    on_draw(boxes.change, redraw, [boxes, image], canvas)
    on_draw(image.change, redraw, [boxes, image], canvas)
    on_draw(clear.click, lambda: ("[]", None), None, [boxes, corner])
    widgets = {"image": image, "boxes": boxes, "prompt": prompt, "negative_prompt": negative_prompt}
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
