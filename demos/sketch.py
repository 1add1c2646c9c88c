"""Sketch tab: draw strokes (or upload a sketch); the methods turn them into a picture."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from demos.common import Hub, banner, build_tab
from demos.widgets import Photo, editor_composite
from methods.core.images import load_image
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.SKETCH


def scribble_map(sketch: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Strokes as white on black (what ControlNet Scribble was trained on), whatever the user drew with."""
    gray = np.asarray(sketch.convert("L").resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    if gray.mean() > 127:  # dark strokes on a light page -> invert
        gray = 255.0 - gray
    strokes = gray > 64
    if strokes.mean() < 0.001:
        raise InputError("The sketch is empty: draw a few strokes (or upload a sketch).")
    return Image.fromarray((strokes * 255).astype(np.uint8), "L").convert("RGB")


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    size = inputs.image.size if inputs.image is not None else (hub.backbone.size, hub.backbone.size)
    sketch = values["sketch_upload"] if values["sketch_upload"] is not None else editor_composite(values["sketch"])
    if sketch is None:
        raise InputError("Please draw a sketch on the canvas or upload one.")
    inputs.control_image = scribble_map(load_image(sketch, "the sketch"), size)
    inputs.prompt = (values["prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt describing what the sketch shows.")
    return inputs


def create_demo(hub: Hub) -> None:
    banner(hub)
    size = hub.backbone.size
    with gr.Row():
        sketch = gr.Sketchpad(
            value={"background": Image.new("RGB", (size, size), "white"), "layers": [], "composite": None},
            type="pil",
            label="Sketch (draw here)",
            canvas_size=(size, size),
            brush=gr.Brush(colors=["#000000"], default_size=3, color_mode="fixed"),
            elem_id="sketch-pad",
        )
        with gr.Column():
            sketch_upload = Photo(type="pil", label="…or upload a sketch", sources=["upload"], height=160)
            image = Photo(
                type="pil",
                label="Source photo (optional: strokes edit it)",
                sources=["upload"],
                height=200,
                elem_id="sketch-image",
            )
            prompt = gr.Textbox(value="", label="Prompt", placeholder="a cottage by a lake, photo")
    widgets = {"sketch": sketch, "sketch_upload": sketch_upload, "image": image, "prompt": prompt}
    build_tab(hub, CONDITION, widgets, build_inputs)
    gr.Examples(
        [[None, "assets/sketch_house.png", None, "a house with a tree, photo"]],
        inputs=[sketch, sketch_upload, image, prompt],
    )
