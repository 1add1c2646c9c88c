"""Segmentation tab: an ADE20K colour map steers the scene.

The map is uploaded, painted with named-class brushes, or extracted from the source photo by the ADE20K
segmenter add-on (then painted over, or edited with "replace class A by class B"). Methods that regenerate a
region of the map, or take a second condition, declare those slots; their widgets (``demos/slots.py``) come
with them.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from demos.common import Hub, Tab, add_examples, banner, build_tab, map_cell, on_draw, on_model
from demos.widgets import editor_composite
from methods.core.images import load_image
from methods.core.segmap import ADE20K_CLASSES, class_color
from methods.core.segmenter import SegMap, replace_class, segment_photo
from methods.core.slots import CONDITION_MAP, IMAGE, PROMPT
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.SEGMENTATION
PAINT_CLASSES = ("sky", "tree", "grass", "building", "water", "mountain", "road", "person", "car", "flower")
MAP_SOURCES = ("the map above", "segment the source photo")


def _hex(name: str) -> str:
    return "#{:02x}{:02x}{:02x}".format(*class_color(name))


def _swatch(name: str, note: str = "") -> str:
    text = "#000" if sum(class_color(name)) > 380 else "#fff"
    style = f"display:inline-block;padding:1px 6px;margin:1px;background:{_hex(name)};color:{text}"
    return f'<span style="{style}">{name}{note}</span>'


def legend() -> str:
    swatches = " ".join(_swatch(n) for n in PAINT_CLASSES)
    return f"Brush colours (ADE20K): {swatches}. Any of the 150 ADE20K classes can be picked below."


def map_legend(segmap: SegMap | None) -> str:
    if segmap is None:
        return "No map yet: upload one, paint one, or extract it from the source photo."
    return "Classes in the map: " + " ".join(_swatch(n, f" {f:.0%}") for n, f in segmap.classes(top=12))


# -- values -> map ------------------------------------------------------------------------------------------
def editor_map(value: Any, size: tuple[int, int]) -> SegMap | None:
    """The editor's map (upload + paint strokes) at ``size``, snapped to the palette (nearest, no blending)."""
    picture = editor_composite(value)
    if picture is None:
        return None
    return SegMap.from_image(load_image(picture, "the segmentation map").resize(size, Image.Resampling.NEAREST))


def condition_map(hub: Hub, values: dict[str, Any], photo: Image.Image | None, size: tuple[int, int]) -> SegMap:
    if values.get("map_source") == MAP_SOURCES[1] and photo is None:
        raise InputError("Upload a source photo to segment, or use the map above.")
    segmap = preview_map(hub, values, photo, size)
    if segmap is None:
        raise InputError(
            "Please upload a segmentation map (ADE20K colours), paint one with the class brushes, "
            "or choose “segment the source photo”."
        )
    return segmap


def preview_map(hub: Hub, values: dict[str, Any], photo: Image.Image | None, size: tuple[int, int]) -> SegMap | None:
    """The map the methods get: the source photo segmented, or the editor's map (None while there is none)."""
    if values.get("map_source") == MAP_SOURCES[1] and photo is not None:
        return segment_photo(hub.backbone, photo, size)
    return editor_map(values.get("segmap"), size)


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    size = hub.working_size(inputs.image)
    segmap = condition_map(hub, values, inputs.image, size)
    inputs.control_image = segmap.image
    inputs.captions.append("classes: " + ", ".join(f"{n} {f:.0%}" for n, f in segmap.classes()))
    inputs.prompt = (values["prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt describing the scene (or the region to regenerate).")
    return inputs


TAB = Tab(CONDITION, (IMAGE, CONDITION_MAP, PROMPT), build_inputs, map_cell(CONDITION), addons=("ade20k_segmenter",))


# Example rows by widget name (region_* and pose_mode are slot widgets): the photos first, each with the ADE20K
# map drawn for it by assets/make_assets.py and a class region to regenerate, then the drawn village.
EXAMPLES: list[dict[str, Any]] = [
    {
        "segmap": "assets/coffee_segmap.png",
        "image": "assets/coffee.jpg",
        "prompt": "a cup of coffee on a saucer on a white marble table",
        "map_source": MAP_SOURCES[0],
        "region_mode": "class",
        "region_class": "table",
        "pose_mode": "none",
    },
    {
        "segmap": "assets/rocket_segmap.png",
        "image": "assets/rocket.jpg",
        "prompt": "a rocket on the launch pad under a sunset sky with orange clouds",
        "map_source": MAP_SOURCES[0],
        "region_mode": "class",
        "region_class": "sky",
        "pose_mode": "none",
    },
    {
        "segmap": "assets/segmap_village.png",
        "image": None,
        "prompt": "a village by a lake, photo",
        "map_source": MAP_SOURCES[0],
        "region_mode": "none",
        "region_class": "water",
        "pose_mode": "keypoints",
    },
    {
        "segmap": "assets/segmap_village.png",
        "image": "assets/house.png",
        "prompt": "a lake in autumn",
        "map_source": MAP_SOURCES[0],
        "region_mode": "class",
        "region_class": "water",
        "pose_mode": "none",
    },
]


def create_demo(hub: Hub) -> None:
    banner(hub)
    brush = gr.Brush(
        colors=[_hex(n) for n in PAINT_CLASSES], default_color=_hex("sky"), default_size=12, color_mode="defaults"
    )
    with gr.Row():
        segmap = gr.ImageEditor(
            type="pil",
            label="Segmentation map (upload, extract from the photo, then paint regions)",
            brush=brush,
            sources=["upload"],
            layers=False,
            elem_id="segmentation-map",
        )
        with gr.Column():
            gr.Markdown(legend())
            paint_class = gr.Dropdown(list(ADE20K_CLASSES), value="sky", label="Brush class")
            image = gr.Image(
                type="pil",
                label="Source photo (optional)",
                sources=["upload"],
                height=200,
                elem_id="segmentation-image",
            )
            prompt = gr.Textbox(value="", label="Prompt", placeholder="a village by a lake under a blue sky")
    with gr.Row():
        with gr.Column():
            map_source = gr.Radio(list(MAP_SOURCES), value=MAP_SOURCES[0], label="Map given to the methods")
            extract = gr.Button("Extract the map from the source photo (ADE20K segmenter) into the editor")
            classes = gr.Markdown(map_legend(None))
        with gr.Column():
            with gr.Row():
                replace_from = gr.Dropdown(list(ADE20K_CLASSES), value="sky", label="Replace class")
                replace_to = gr.Dropdown(list(ADE20K_CLASSES), value="tree", label="by class")
            replace = gr.Button("Replace class A by class B in the map")

    def set_brush(name: str) -> Any:
        colors = [_hex(name), *brush.colors]
        return gr.ImageEditor(
            brush=gr.Brush(colors=colors, default_color=_hex(name), default_size=12, color_mode="defaults")
        )

    def refresh_legend(value: Any, source: Any) -> str:
        return map_legend(editor_map(value, hub.working_size(hub.source_image(source, required=False))))

    def extract_map(source: Any) -> tuple[Any, str]:
        photo = hub.source_image(source, required=False)
        if photo is None:
            raise gr.Error("Upload a source photo first.")
        return segment_photo(hub.backbone, photo).image, MAP_SOURCES[0]

    def replace_classes(value: Any, source: Any, old: str, new: str) -> Any:
        current = editor_map(value, hub.working_size(hub.source_image(source, required=False)))
        if current is None:
            raise gr.Error("No map to edit yet.")
        return replace_class(current, old, new).image

    on_draw(paint_class.change, set_brush, paint_class, segmap)
    on_draw(segmap.change, refresh_legend, [segmap, image], classes)
    on_model(extract.click, extract_map, image, [segmap, map_source])
    on_draw(replace.click, replace_classes, [segmap, image, replace_from, replace_to], segmap)
    widgets = {"segmap": segmap, "image": image, "prompt": prompt, "map_source": map_source}
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
