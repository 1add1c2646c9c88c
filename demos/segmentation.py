"""Segmentation tab: an ADE20K colour map (uploaded, then repainted with named classes) steers the scene."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, banner, build_tab
from demos.widgets import Photo, editor_composite
from methods.core.images import load_image
from methods.core.segmap import ADE20K_CLASSES, class_color, classes_in, snap_to_palette
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.SEGMENTATION
PAINT_CLASSES = ("sky", "tree", "grass", "building", "water", "mountain", "road", "person", "car", "flower")


def _hex(name: str) -> str:
    return "#{:02x}{:02x}{:02x}".format(*class_color(name))


def legend() -> str:
    swatches = " ".join(
        f'<span style="display:inline-block;padding:1px 6px;margin:1px;background:{_hex(n)};'
        f'color:{"#000" if sum(class_color(n)) > 380 else "#fff"}">{n}</span>'
        for n in PAINT_CLASSES
    )
    return f"Brush colours (ADE20K): {swatches}. Any of the 150 ADE20K classes can be picked below."


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    segmap = editor_composite(values["segmap"])
    if segmap is None:
        raise InputError("Please upload a segmentation map (ADE20K colours) or paint one with the class brushes.")
    size = inputs.image.size if inputs.image is not None else (hub.backbone.size, hub.backbone.size)
    clean, ids = snap_to_palette(load_image(segmap, "the segmentation map").resize(size))
    inputs.control_image = clean
    inputs.notes["condition_caption"] = "classes: " + ", ".join(f"{n} {f:.0%}" for n, f in classes_in(ids))
    inputs.prompt = (values["prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt describing the scene.")
    return inputs


def create_demo(hub: Hub) -> None:
    banner(hub)
    brush = gr.Brush(
        colors=[_hex(n) for n in PAINT_CLASSES], default_color=_hex("sky"), default_size=12, color_mode="defaults"
    )
    with gr.Row():
        segmap = gr.ImageEditor(
            type="pil",
            label="Segmentation map (upload, then paint regions)",
            brush=brush,
            sources=["upload"],
            layers=False,
            elem_id="segmentation-map",
        )
        with gr.Column():
            gr.Markdown(legend())
            paint_class = gr.Dropdown(list(ADE20K_CLASSES), value="sky", label="Brush class")
            image = Photo(
                type="pil",
                label="Source photo (optional)",
                sources=["upload"],
                height=200,
                elem_id="segmentation-image",
            )
            prompt = gr.Textbox(value="", label="Prompt", placeholder="a village by a lake under a blue sky")

    def set_brush(name: str) -> Any:
        return gr.ImageEditor(
            brush=gr.Brush(
                colors=[_hex(name), *brush.colors], default_color=_hex(name), default_size=12, color_mode="defaults"
            )
        )

    paint_class.change(set_brush, paint_class, segmap, api_visibility="private")
    widgets = {"segmap": segmap, "image": image, "prompt": prompt}
    build_tab(hub, CONDITION, widgets, build_inputs)
    gr.Examples([["assets/segmap_village.png", None, "a village by a lake, photo"]], inputs=[segmap, image, prompt])
