"""Sketch tab: draw strokes (any colour), upload a sketch, or extract lines from a photo (lineart, HED,
PiDiNet, Canny) into the canvas and draw over them; the methods turn the result into a picture.

The tab gives the methods two readings of the sketch: the strokes as white lines on black (the condition map
the line-conditioned networks were trained on) and the painting itself, colours kept (painted over the source
photo when there is one: stroke-based editing)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from demos.common import Hub, Tab, add_examples, banner, build_tab, map_cell, on_model
from demos.widgets import editor_composite, editor_layers
from methods.core.annotators import LINE_DETECTORS, extract_lines
from methods.core.images import load_image
from methods.core.slots import CONDITION_MAP, IMAGE, PROMPT, STROKES
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.SKETCH
SOURCES = ("canvas or upload", "lines of the source photo")
PALETTE = ["#000000", "#ffffff", "#d62728", "#ff7f0e", "#ffdd33", "#2ca02c", "#1f77b4", "#87ceeb", "#8c564b"]


def scribble_map(sketch: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Strokes as white on black (what scribble-conditioned networks were trained on), whatever the user drew with.

    A stroke is a pixel that differs from the page (the median colour) by more than 64 in some channel: dark
    or coloured strokes on a light page, light strokes on a dark one."""
    rgb = np.asarray(sketch.convert("RGB").resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    page = np.median(rgb.reshape(-1, 3), axis=0)
    strokes = np.abs(rgb - page).max(axis=2) > 64
    return _white_lines(strokes, "The sketch is empty: draw a few strokes (or upload a sketch).")


def _white_lines(strokes: np.ndarray, empty: str) -> Image.Image:
    """A boolean stroke array as white lines on black (RGB); almost no stroke pixels is an input error."""
    if strokes.mean() < 0.001:
        raise InputError(empty)
    return Image.fromarray((strokes * 255).astype(np.uint8), "L").convert("RGB")


def stroke_painting(drawn: Any, uploaded: Any, photo: Image.Image | None, size: tuple[int, int]) -> Image.Image:
    """The painting as drawn (colours kept): an upload as it is; canvas strokes over the source photo when there
    is one (stroke-based editing), else the canvas itself (stroke-based synthesis)."""
    if uploaded is not None:
        return load_image(uploaded, "the sketch").convert("RGB").resize(size)
    layers = editor_layers(drawn)
    if photo is not None and any(layer.getchannel("A").getbbox() for layer in layers):
        painting = photo.convert("RGBA").resize(size)
        for layer in layers:
            painting.alpha_composite(layer.resize(size))
        return painting.convert("RGB")
    composite = editor_composite(drawn)
    if composite is None:
        raise InputError("Please draw a sketch on the canvas or upload one.")
    return load_image(composite, "the sketch").convert("RGB").resize(size)


def line_map(lines: Image.Image, detector: str) -> Image.Image:
    """Extracted lines (white on black) made binary, as the drawn strokes are."""
    strokes = np.asarray(lines.convert("L")) > 64
    return _white_lines(strokes, f"{detector} found no lines in the photo. Try another detector or draw the sketch.")


def canvas_value(lines: Image.Image, side: int) -> dict[str, Any]:
    """Extracted lines as the sketch canvas's background (dark on white, to draw over), no strokes yet."""
    page = Image.eval(lines.convert("L"), lambda v: 255 - v).convert("RGB").resize((side, side))
    return {"background": page, "layers": [], "composite": page}


def lines_photo(hub: Hub, line_photo: Any, source: Any) -> Image.Image:
    photo = line_photo if line_photo is not None else source
    if photo is None:
        raise InputError("Upload a photo to extract lines from (or a source photo).")
    return hub.source_image(photo, "the photo for the lines")


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    size = hub.working_size(inputs.image)
    if values.get("sketch_from") == SOURCES[1]:
        detector = values.get("line_detector") or LINE_DETECTORS[0]
        if inputs.image is None:
            raise InputError("“Lines of the source photo” needs a source photo (or extract into the canvas).")
        lines = extract_lines(hub.backbone, inputs.image, detector, size)
        inputs.control_image = line_map(lines, detector)
        # A line drawing is the only painting there is: dark lines on white, as drawn with a pencil.
        inputs[STROKES] = Image.eval(inputs.control_image, lambda v: 255 - v)
        inputs.captions.append(f"lines extracted by {detector}")
    else:
        sketch = values["sketch_upload"] if values["sketch_upload"] is not None else editor_composite(values["sketch"])
        if sketch is None:
            raise InputError("Please draw a sketch on the canvas or upload one.")
        inputs.control_image = scribble_map(load_image(sketch, "the sketch"), size)
        inputs[STROKES] = stroke_painting(values["sketch"], values["sketch_upload"], inputs.image, size)
        inputs.captions.append("uploaded" if values["sketch_upload"] is not None else "drawn")
    inputs.prompt = (values["prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt describing what the sketch shows.")
    return inputs


TAB = Tab(
    CONDITION,
    (IMAGE, CONDITION_MAP, PROMPT, STROKES),
    build_inputs,
    map_cell(CONDITION),
    addons=("annotator_lineart", "annotator_hed", "annotator_pidinet"),
)


# Example rows by widget name: the photos first (assets/README.md; the cat's sketch is its Canny edges, drawn by
# assets/make_assets.py; the coffee's lines are extracted at run time), then the drawn house.
EXAMPLES: list[dict[str, Any]] = [
    {
        "sketch_upload": "assets/chelsea_sketch.png",
        "image": "assets/chelsea.jpg",
        "prompt": "a close-up photo of a tiger's face",
        "sketch_from": SOURCES[0],
        "line_detector": LINE_DETECTORS[0],
    },
    {
        "sketch_upload": None,
        "image": "assets/coffee.jpg",
        "prompt": "a cup of green tea on a saucer, wooden table",
        "sketch_from": SOURCES[1],
        "line_detector": "canny",
    },
    {
        "sketch_upload": "assets/sketch_house.png",
        "image": None,
        "prompt": "a house with a tree, photo",
        "sketch_from": SOURCES[0],
        "line_detector": LINE_DETECTORS[0],
    },
]


def create_demo(hub: Hub) -> None:
    banner(hub)
    size = hub.backbone.size
    with gr.Row():
        sketch = gr.Sketchpad(
            value={"background": Image.new("RGB", (size, size), "white"), "layers": [], "composite": None},
            type="pil",
            label="Sketch (draw here: black lines, or colours for the methods that read the painting)",
            canvas_size=(size, size),
            brush=gr.Brush(colors=PALETTE, default_color=PALETTE[0], default_size=3, color_mode="defaults"),
            elem_id="sketch-pad",
        )
        with gr.Column():
            sketch_upload = gr.Image(type="pil", label="…or upload a sketch", sources=["upload"], height=160)
            image = gr.Image(
                type="pil",
                label="Source photo (optional: strokes edit it)",
                sources=["upload"],
                height=200,
                elem_id="sketch-image",
            )
            prompt = gr.Textbox(value="", label="Prompt", placeholder="a cottage by a lake, photo")
    with gr.Accordion("…or extract lines from a photo, then draw over them", open=False):
        with gr.Row():
            line_photo = gr.Image(
                type="pil", label="Photo for the lines (default: the source)", sources=["upload"], height=200
            )
            with gr.Column():
                detector = gr.Dropdown(
                    list(LINE_DETECTORS),
                    value=LINE_DETECTORS[0],
                    label="Line detector",
                    info="lineart / HED / PiDiNet: controlnet_aux networks; Canny: OpenCV edges (no weights).",
                )
                extract = gr.Button("Extract lines into the sketch canvas", elem_id="sketch-extract")
                sketch_from = gr.Radio(
                    list(SOURCES),
                    value=SOURCES[0],
                    label="The methods get",
                    info="“lines of the source photo”: extracted at run time (no drawing over).",
                )

    def extract_into_canvas(photo: Any, source: Any, name: str) -> tuple[dict[str, Any], None, str]:
        lines = extract_lines(hub.backbone, lines_photo(hub, photo, source), name)
        return canvas_value(lines, size), None, SOURCES[0]

    on_model(extract.click, extract_into_canvas, [line_photo, image, detector], [sketch, sketch_upload, sketch_from])
    widgets = {
        "sketch": sketch,
        "sketch_upload": sketch_upload,
        "image": image,
        "prompt": prompt,
        "sketch_from": sketch_from,
        "line_detector": detector,
    }
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
