"""Mask tab: redraw a region from a prompt, or extend the canvas.

The mask is painted on the photo, uploaded (white = edit), or picked by clicking on the object with
Segment Anything: object / background clicks and an optional box on the canvas, a choice among SAM's
three candidate masks (with its scores), grow and smooth sliders, then "Use this mask". Methods that extend
the canvas make their own mask, so the tab also runs without one: the methods that need a mask then show a
"skipped" cell saying so.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from demos.common import Hub, Tab, add_examples, banner, build_tab, on_draw, on_model, prompt_text
from demos.widgets import (
    display_size,
    dump,
    editor_background,
    for_display,
    mask_editor,
    mask_from,
    parse_json_list,
    relative,
    relative_click,
)
from methods.core import masks
from methods.core.images import mask_overlay
from methods.core.limits import MAX_CLICKS
from methods.core.slots import IMAGE, MASK, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.MASK
POINTS_EXAMPLE = "[[0.5, 0.4, 1], [0.1, 0.1, 0]] (x, y in 0..1; 1 = object, 0 = background)"
BOX_EXAMPLE = "[0.1, 0.2, 0.6, 0.9] (x0, y0, x1, y1 in 0..1)"
OBJECT, BACKGROUND, BOX = "object (positive click)", "background (negative click)", "box (click two corners)"


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    source = values["image"] if values["image"] is not None else editor_background(values["mask_drawing"])
    inputs.image = hub.source_image(source)
    # No mask is allowed: methods that extend the canvas make their own; those that need one become "skipped" cells.
    inputs.mask = mask_from(values["mask_drawing"], values["mask_image"], inputs.image.size)
    inputs.prompt = (values["prompt"] or "").strip()
    inputs.negative_prompt = (values["negative_prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt: what should fill the masked region (or the new canvas area).")
    return inputs


def condition_cell(hub: Hub, inputs: EditInputs) -> tuple[Any, str]:
    if inputs.mask is None:  # extending the canvas needs no mask; the methods that do are skipped
        return inputs.image, f"Source, no mask (only methods that make their own mask run) · {prompt_text(inputs)}"
    return mask_overlay(inputs.image, inputs.mask), f"Source with mask (red = region to edit) · {prompt_text(inputs)}"


TAB = Tab(CONDITION, (IMAGE, MASK, PROMPT, NEGATIVE_PROMPT), build_inputs, condition_cell, addons=("sam",))

# Example rows by widget name: the photos first (assets/README.md), then the drawn house. The masks are uploads:
# a change of the photo resets the painted layer, so an example's painted mask would not survive.
EXAMPLES: list[dict[str, Any]] = [
    {
        "image": "assets/chelsea.jpg",
        "mask_image": "assets/chelsea_eyes_mask.png",
        "prompt": "a cat wearing round black sunglasses",
        "negative_prompt": "",
    },
    {
        "image": "assets/coffee.jpg",
        "mask_image": "assets/coffee_mask.png",
        "prompt": "green matcha tea with latte art",
        "negative_prompt": "",
    },
    {
        "image": "assets/house.png",
        "mask_image": "assets/house_mask.png",
        "prompt": "a wooden door",
        "negative_prompt": "",
    },
    {"image": "assets/house.png", "mask_image": None, "prompt": "a house on a wide meadow", "negative_prompt": ""},
]


# -- Segment Anything prompts ------------------------------------------------------------------------
def parse_points(text: str | None, size: tuple[int, int]) -> list[tuple[float, float, int]]:
    """Clicks as JSON [[x, y, label], ...] (relative, 1 = object, 0 = background) -> pixels of ``size``."""
    width, height = size
    points = []
    for item in parse_json_list(text, "clicks", POINTS_EXAMPLE, cap=MAX_CLICKS):
        if not (isinstance(item, list) and len(item) == 3 and item[2] in (0, 1) and not isinstance(item[2], float)):
            raise InputError(f"Each click is [x, y, label], e.g. {POINTS_EXAMPLE}.")
        x, y = (relative(v, "clicks", POINTS_EXAMPLE) for v in item[:2])
        points.append((x * (width - 1), y * (height - 1), int(item[2])))
    return points


def parse_box(text: str | None, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """A box as JSON [x0, y0, x1, y1] (relative) -> pixels of ``size``; empty text = no box."""
    values = parse_json_list(text, "box", BOX_EXAMPLE)
    if not values:
        return None
    if len(values) != 4:
        raise InputError(f"The box is four numbers, e.g. {BOX_EXAMPLE}.")
    x0, y0, x1, y1 = (relative(v, "box", BOX_EXAMPLE) for v in values)
    width, height = size
    return min(x0, x1) * (width - 1), min(y0, y1) * (height - 1), max(x0, x1) * (width - 1), max(y0, y1) * (height - 1)


def segment(hub: Hub, photo: Image.Image, points_text: str, box_text: str) -> list[Any]:
    """SAM's candidate masks for the clicks and box (empty without any); bad clicks raise InputError."""
    from methods.core.sam import segmenter

    points, box = parse_points(points_text, photo.size), parse_box(box_text, photo.size)
    if not points and box is None:
        return []
    return segmenter(hub.backbone).predict(photo, points, box)


def choice_update(candidates: list[Any], keep: str | None) -> dict[str, Any]:
    choices = [(f"mask {i + 1} · score {c.score:.2f}", str(i)) for i, c in enumerate(candidates)]
    values = [value for _, value in choices]
    if keep not in values:
        keep = str(int(np.argmax([c.score for c in candidates]))) if candidates else None
    return gr.update(choices=choices, value=keep)


def selected_mask(candidates: list[Any], choice: str | None, grow: float, smoothing: float) -> Image.Image | None:
    if not candidates:
        return None
    index = int(choice) if isinstance(choice, str) and choice.isdigit() else 0
    candidate = candidates[index if index < len(candidates) else 0]
    return masks.dilate(masks.smooth(masks.from_bool(candidate.mask), smoothing), grow)


def draw_prompts(photo: Image.Image, points_text: str, box_text: str, mask: Image.Image | None) -> Image.Image:
    """The click canvas: the photo at display size, the mask in blue, object clicks green, background red."""
    shown = for_display(photo)
    if mask is not None:
        shown = mask_overlay(shown, mask.resize(shown.size, Image.Resampling.NEAREST), (40, 120, 255))
    draw = ImageDraw.Draw(shown)
    radius = max(3, shown.width // 90)
    for x, y, label in parse_points(points_text, shown.size):
        color = (40, 220, 60) if label == 1 else (255, 50, 50)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color, outline=(255, 255, 255))
    box = parse_box(box_text, shown.size)
    if box is not None:
        draw.rectangle(box, outline=(255, 210, 0), width=max(2, radius // 2))
    return shown


def add_click(
    points_text: str, box_text: str, pending: Any, mode: str, relative: tuple[float, float]
) -> tuple[str, str, Any]:
    """A canvas click: a labelled point, or one corner of the box (the second corner closes it)."""
    x, y = round(relative[0], 4), round(relative[1], 4)
    if mode == BOX:
        if pending is None:
            return points_text, box_text, (x, y)
        return points_text, dump([pending[0], pending[1], x, y]), None
    items = parse_json_list(points_text, "clicks", POINTS_EXAMPLE)
    items.append([x, y, 1 if mode == OBJECT else 0])
    return dump(items), box_text, None


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = gr.Image(type="pil", label="Source photo", sources=["upload", "clipboard"], elem_id="mask-image")
        drawing = mask_editor(elem_id="mask-drawing")
    with gr.Accordion("…or click on the object: Segment Anything", open=True):
        with gr.Row():
            canvas = gr.Image(
                type="pil",
                interactive=False,
                label="Click the object (green) / background (red); the mask is blue",
                elem_id="mask-sam-canvas",
                height=360,
            )
            with gr.Column():
                mode = gr.Radio([OBJECT, BACKGROUND, BOX], value=OBJECT, label="A click adds")
                points = gr.Textbox(label="Clicks (JSON)", value="[]", lines=2, info=POINTS_EXAMPLE)
                box = gr.Textbox(label="Box (JSON, optional)", value="", info=BOX_EXAMPLE)
                choice = gr.Radio([], label="SAM's candidate masks (predicted IoU)", type="value")
                grow = gr.Slider(0, 32, value=0, step=1, label="Grow (dilate, px)")
                smoothing = gr.Slider(
                    0,
                    8,
                    value=0,
                    step=0.5,
                    label="Smooth the outline (px)",
                    info="Blur and re-threshold: fills pinholes and jagged edges. Masks stay binary here; "
                    "the soft seam is each method's feather setting.",
                )
                with gr.Row():
                    clear = gr.Button("Clear clicks")
                    use = gr.Button("Use this mask", variant="secondary", elem_id="mask-sam-use")
    with gr.Row():
        mask_image = gr.Image(type="pil", label="…or upload a mask (white = edit)", sources=["upload"], height=160)
        with gr.Column():
            prompt = gr.Textbox(
                value="", label="Prompt for the masked region (or the new area)", placeholder="a wooden bench"
            )
            negative_prompt = gr.Textbox(value="", label="Negative prompt (optional)")
            gr.Markdown("No mask? The methods that extend the canvas make their own; the others are skipped.")
    pending = gr.State(None)

    def refresh(source: Any, points_text: str, box_text: str, keep: str | None, grow_px: float, smooth_px: float):
        if source is None:
            return None, gr.update(choices=[], value=None)
        photo = hub.source_image(source)
        candidates = segment(hub, photo, points_text, box_text)
        update = choice_update(candidates, keep)
        mask = selected_mask(candidates, update["value"], grow_px, smooth_px)
        return draw_prompts(photo, points_text, box_text, mask), update

    def on_prompts(source: Any, points_text: str, box_text: str, grow_px: float, smooth_px: float):
        return refresh(source, points_text, box_text, None, grow_px, smooth_px)  # new clicks: the best mask

    def click(points_text: str, box_text: str, pending_corner: Any, mode_value: str, source: Any, evt: gr.SelectData):
        if source is None:
            raise gr.Error("Upload a photo first.")
        where = relative_click(evt, display_size(hub.source_image(source).size))
        return add_click(points_text, box_text, pending_corner, mode_value, where)

    def use_mask(source: Any, points_text: str, box_text: str, keep: str | None, grow_px: float, smooth_px: float):
        if source is None:
            raise gr.Error("Upload a photo first.")
        photo = hub.source_image(source)
        mask = selected_mask(segment(hub, photo, points_text, box_text), keep, grow_px, smooth_px)
        if mask is None or not masks.as_bool(mask).any():
            raise gr.Error("No mask yet: click on the object first (or pick another candidate).")
        gr.Info("The mask is now in the mask upload box; strokes painted in the editor were cleared.")
        return mask, source  # the editor reset to the plain photo, so the uploaded mask is the one used

    prompts_in = [image, points, box, grow, smoothing]
    view_in = [image, points, box, choice, grow, smoothing]
    on_draw(image.change, lambda im: im, image, drawing)
    reset = on_draw(image.change, lambda: ("[]", "", None), None, [points, box, pending])
    on_model(reset.then, on_prompts, prompts_in, [canvas, choice])
    for trigger in (points.change, box.change):
        on_model(trigger, on_prompts, prompts_in, [canvas, choice])
    for trigger in (choice.input, grow.release, smoothing.release):
        on_model(trigger, refresh, view_in, [canvas, choice])
    on_draw(canvas.select, click, [points, box, pending, mode, image], [points, box, pending])
    on_draw(clear.click, lambda: ("[]", "", None), None, [points, box, pending])
    on_model(use.click, use_mask, view_in, [mask_image, drawing])
    widgets = {
        "image": image,
        "mask_drawing": drawing,
        "mask_image": mask_image,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
    }
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
