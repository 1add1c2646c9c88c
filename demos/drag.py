"""Drag tab: click a handle point then its target (repeat for more pairs); optionally paint the
region allowed to change."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, Tab, add_examples, banner, build_tab, on_draw
from demos.widgets import (
    display_size,
    dump,
    for_display,
    mask_editor,
    mask_from,
    parse_json_list,
    relative,
    relative_click,
)
from methods.core.drag_regions import draw_regions
from methods.core.images import draw_drags
from methods.core.limits import MAX_DRAG_PAIRS, at_most
from methods.core.slots import DRAGS, IMAGE, MASK, PROMPT, REGIONS
from methods.core.spec import Condition, Drag, EditInputs, InputError

CONDITION = Condition.DRAG
DRAG_EXAMPLE = "[[0.3, 0.5, 0.6, 0.5]] (handle x, y, target x, y in 0..1)"


def parse_drags(text: str | None, size: tuple[int, int]) -> list[Drag]:
    width, height = size
    drags = []
    items = parse_json_list(text, "drag points", DRAG_EXAMPLE)
    at_most(items, MAX_DRAG_PAIRS, "handle → target pairs")
    for item in items:
        if not (isinstance(item, list) and len(item) == 4):
            raise InputError(f"Each drag is four numbers, e.g. {DRAG_EXAMPLE}.")
        hx, hy, tx, ty = (relative(v, "drag points", DRAG_EXAMPLE) for v in item)
        drags.append(
            Drag(
                (round(hx * (width - 1)), round(hy * (height - 1))), (round(tx * (width - 1)), round(ty * (height - 1)))
            )
        )
    return drags


def _scaled(point: tuple[int, int], scale: float) -> tuple[int, int]:
    return round(point[0] * scale), round(point[1] * scale)


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"])
    inputs.drags = parse_drags(values["drag_points"], inputs.image.size)
    if not inputs.drags:
        raise InputError("Please click a handle point and then its target on the canvas.")
    inputs.mask = mask_from(values["mask_drawing"], None, inputs.image.size)
    inputs.prompt = (values["prompt"] or "").strip()
    return inputs


def condition_cell(hub: Hub, inputs: EditInputs) -> tuple[Any, str]:
    pairs = "; ".join(f"{d.handle}→{d.target}" for d in inputs.drags)
    masked = "mask = editable region (bright)" if inputs.mask is not None else "no mask: whole image editable"
    picture = draw_drags(inputs.image, inputs.drags, inputs.mask)
    caption = f"Drag handle (red) → target (blue): {pairs} · {masked}"
    regions = inputs[REGIONS] or []
    if regions:  # the region-based methods' own input, drawn over the points
        picture = draw_regions(picture, regions)
        caption += f" · {len(regions)} region pair(s): handle box (red) → target box (blue)"
    return picture, caption


TAB = Tab(CONDITION, (IMAGE, DRAGS, MASK, PROMPT), build_inputs, condition_cell)

# Example rows by widget name, points placed by looking at the photos (handle x, y, target x, y in 0..1; the region
# pairs, a slot of the region-based methods, box the same handle and target): the photos first
# (assets/README.md; the cat's nose dragged right and up, turning its face; the spoon dragged off the saucer),
# then the drawn house. No painted mask: a change of the photo resets the painted layer, so the whole photo is
# editable.
EXAMPLES: list[dict[str, Any]] = [
    {
        "image": "assets/chelsea.jpg",
        "drag_points": dump([[0.578, 0.81, 0.664, 0.762]]),
        "region_pairs": dump([[0.5, 0.72, 0.656, 0.895, 0.586, 0.672, 0.742, 0.848]]),
        "prompt": "a photo of a cat",
    },
    {
        "image": "assets/coffee.jpg",
        "drag_points": dump([[0.611, 0.71, 0.781, 0.762]]),
        "region_pairs": dump([[0.54, 0.6, 0.68, 0.82, 0.71, 0.652, 0.85, 0.872]]),
        "prompt": "a cup of coffee and a spoon on a wooden table",
    },
    {
        "image": "assets/house.png",
        "drag_points": dump([[0.35, 0.55, 0.6, 0.55]]),
        "region_pairs": "[]",
        "prompt": "a house on a meadow",
    },
]


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = gr.Image(type="pil", label="Source photo", sources=["upload", "clipboard"], elem_id="drag-image")
        canvas = gr.Image(
            type="pil",
            interactive=False,
            label="Click handle (red), then target (blue)",
            elem_id="drag-canvas",
            height=360,
        )
    with gr.Row():
        drawing = mask_editor("Optional: paint the region allowed to move", elem_id="drag-mask")
        with gr.Column():
            points = gr.Textbox(label="Drag points (JSON)", value="[]", lines=2)
            clear = gr.Button("Clear points")
            prompt = gr.Textbox(value="", label="Prompt describing the photo (optional)")
    pending = gr.State(None)

    def redraw(text: str, source: Any, drawn: Any) -> Any:
        if source is None:
            return None
        photo = hub.source_image(source)
        try:
            drags = parse_drags(text, photo.size)
        except InputError:
            drags = []
        mask = mask_from(drawn, None, photo.size)
        shown = display_size(photo.size)
        scale = shown[0] / photo.size[0]
        drags = [
            Drag(tuple(round(v * scale) for v in d.handle), tuple(round(v * scale) for v in d.target)) for d in drags
        ]
        return draw_drags(for_display(photo), drags, mask.resize(shown) if mask is not None else None)

    def click(text: str, handle: Any, source: Any, evt: gr.SelectData) -> tuple[str, Any]:
        if source is None:
            raise gr.Error("Upload a photo first.")
        x, y = relative_click(evt, display_size(hub.source_image(source).size))
        if handle is None:
            return text, (x, y)
        items = parse_json_list(text, "drag points", DRAG_EXAMPLE)
        items.append([round(handle[0], 4), round(handle[1], 4), round(x, 4), round(y, 4)])
        return dump(items), None

    on_draw(image.change, lambda im: im, image, drawing)
    for trigger in (points.change, image.change, drawing.change):
        on_draw(trigger, redraw, [points, image, drawing], canvas)
    on_draw(canvas.select, click, [points, pending, image], [points, pending])
    on_draw(clear.click, lambda: ("[]", None), None, [points, pending])
    widgets = {"image": image, "drag_points": points, "mask_drawing": drawing, "prompt": prompt}
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
