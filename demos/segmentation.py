"""Segmentation tab: an ADE20K colour map steers the scene; a region of it can be regenerated; a pose can join.

The map is uploaded, painted with named-class brushes, or extracted from the source photo by the ADE20K
segmenter add-on (then repainted, or edited with "replace class A by class B"). A region for the region-edit
method is picked on the map by class name, by clicks on the map (the connected piece of the class under each
click), or by Segment Anything clicks on the photo. An optional second condition, a pose skeleton (the default
standing keypoints, edited as JSON, or an uploaded map), feeds the multi-condition methods.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from demos.common import Hub, banner, build_tab, on_draw, on_model
from demos.pose import parse_keypoints
from demos.widgets import display_size, dump, editor_composite, parse_json_list, relative, relative_click
from methods.core import masks
from methods.core.images import load_image, mask_overlay
from methods.core.limits import MAX_CLICKS
from methods.core.pose import DEFAULT_KEYPOINTS, render_pose
from methods.core.segmap import ADE20K_CLASSES, class_color
from methods.core.segmenter import SegMap, class_mask, region_at, replace_class, segment_photo
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.SEGMENTATION
PAINT_CLASSES = ("sky", "tree", "grass", "building", "water", "mountain", "road", "person", "car", "flower")
MAP_SOURCES = ("the map above", "segment the source photo")
REGION_MODES = ("none", "class", "clicks on the map", "Segment Anything clicks on the photo")
POSE_MODES = ("none", "keypoints", "pose map")
CLICKS_EXAMPLE = "[[0.5, 0.7], [0.2, 0.3, 0]] (x, y in 0..1; optional label 1 = add, 0 = remove)"


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


# -- values -> map, region, second condition ------------------------------------------------------------
def editor_map(value: Any, size: tuple[int, int]) -> SegMap | None:
    """The editor's map (upload + paint strokes) at ``size``, snapped to the palette (nearest, no blending)."""
    picture = editor_composite(value)
    if picture is None:
        return None
    return SegMap.from_image(load_image(picture, "the segmentation map").resize(size, Image.Resampling.NEAREST))


def condition_map(hub: Hub, values: dict[str, Any], photo: Image.Image | None, size: tuple[int, int]) -> SegMap:
    if values.get("map_source") == MAP_SOURCES[1]:
        if photo is None:
            raise InputError("Upload a source photo to segment, or use the map above.")
        return segment_photo(hub.backbone, photo, size)
    segmap = editor_map(values.get("segmap"), size)
    if segmap is None:
        raise InputError(
            "Please upload a segmentation map (ADE20K colours), paint one with the class brushes, "
            "or choose “segment the source photo”."
        )
    return segmap


def parse_clicks(text: str | None) -> list[tuple[float, float, int]]:
    clicks = []
    for item in parse_json_list(text, "region clicks", CLICKS_EXAMPLE, cap=MAX_CLICKS):
        if not (isinstance(item, list) and len(item) in (2, 3)) or (len(item) == 3 and item[2] not in (0, 1)):
            raise InputError(f"Each region click is [x, y] or [x, y, label], e.g. {CLICKS_EXAMPLE}.")
        x, y = (relative(v, "region clicks", CLICKS_EXAMPLE) for v in item[:2])
        clicks.append((x, y, int(item[2]) if len(item) == 3 else 1))
    return clicks


def region(
    hub: Hub, values: dict[str, Any], segmap: SegMap, photo: Image.Image | None
) -> tuple[Image.Image | None, str]:
    """The region to regenerate as a mask (None = no region) and a caption."""
    mode = values.get("region_mode") or REGION_MODES[0]
    if mode == REGION_MODES[1]:
        name = values.get("region_class") or ""
        return class_mask(segmap, name), f"region: every “{name}” pixel"
    if mode in REGION_MODES[2:]:
        clicks = parse_clicks(values.get("region_clicks"))
        if not clicks:
            raise InputError(
                "Click on the region canvas (or type the clicks) to pick a region, or set the region to none."
            )
        if mode == REGION_MODES[2]:
            union = np.zeros(segmap.ids.shape, dtype=bool)
            names = []
            for x, y, label in clicks:
                piece, name = region_at(segmap, x, y)
                union = (union | masks.as_bool(piece)) if label else (union & ~masks.as_bool(piece))
                names.append(name if label else f"−{name}")
            return masks.from_bool(union), "region: clicked pieces of " + ", ".join(names)
        if photo is None:
            raise InputError("Segment Anything clicks need the source photo: upload one.")
        return sam_region(hub, photo, clicks), f"region: Segment Anything ({len(clicks)} clicks)"
    return None, ""


def sam_region(hub: Hub, photo: Image.Image, clicks: list[tuple[float, float, int]]) -> Image.Image:
    from methods.core.sam import segmenter

    width, height = photo.size
    points = [(x * (width - 1), y * (height - 1), label) for x, y, label in clicks]
    candidates = segmenter(hub.backbone).predict(photo, points)
    best = max(candidates, key=lambda c: c.score)
    return masks.from_bool(best.mask)


def pose_condition(values: dict[str, Any], size: tuple[int, int]) -> tuple[Image.Image | None, str]:
    mode = values.get("pose_mode") or POSE_MODES[0]
    if mode == POSE_MODES[1]:
        return render_pose(parse_keypoints(values.get("keypoints")), size), "pose from keypoints"
    if mode == POSE_MODES[2]:
        if values.get("pose_map") is None:
            raise InputError("Upload a pose map (an OpenPose skeleton on black), or set the second condition to none.")
        return load_image(values["pose_map"], "the pose map").resize(size), "pose map"
    return None, ""


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    size = hub.working_size(inputs.image)
    segmap = condition_map(hub, values, inputs.image, size)
    inputs.control_image = segmap.image
    inputs.mask, region_caption = region(hub, values, segmap, inputs.image)
    pose, pose_caption = pose_condition(values, size)
    if pose is not None:
        inputs.extra_controls["pose"] = pose
    captions = ["classes: " + ", ".join(f"{n} {f:.0%}" for n, f in segmap.classes()), region_caption, pose_caption]
    inputs.notes["condition_caption"] = " · ".join(c for c in captions if c)
    inputs.prompt = (values["prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt describing the scene (or the region to regenerate).")
    return inputs


# -- the region canvas ------------------------------------------------------------------------------------
def region_preview(hub: Hub, values: dict[str, Any]) -> Image.Image | None:
    """The map (or, for SAM, the photo) at display size with the picked region tinted and the clicks drawn."""
    photo = hub.source_image(values["image"], required=False)
    size = hub.working_size(photo)
    segment = values.get("map_source") == MAP_SOURCES[1] and photo is not None
    segmap = segment_photo(hub.backbone, photo, size) if segment else editor_map(values.get("segmap"), size)
    sam = values.get("region_mode") == REGION_MODES[3]
    base = photo if sam else (segmap.image if segmap is not None else None)
    if base is None:
        return None
    mask = None
    if segmap is not None or sam:
        try:
            mask, _ = region(hub, values, segmap or SegMap(np.zeros(size[::-1], dtype=np.int64)), photo)
        except InputError:
            mask = None
    shown = base.resize(display_size(size), Image.Resampling.NEAREST)
    if mask is not None:
        shown = mask_overlay(shown, mask.resize(shown.size, Image.Resampling.NEAREST), (255, 255, 255))
    draw = ImageDraw.Draw(shown)
    radius = max(3, shown.width // 90)
    for x, y, label in parse_clicks(values.get("region_clicks")):
        cx, cy = x * (shown.width - 1), y * (shown.height - 1)
        color = (40, 220, 60) if label else (255, 50, 50)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=color, outline=(0, 0, 0))
    return shown


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
    with gr.Accordion("Region to regenerate (region-edit method)", open=False):
        with gr.Row():
            canvas = gr.Image(
                type="pil", interactive=False, label="Click to pick regions", elem_id="segmentation-region", height=320
            )
            with gr.Column():
                region_mode = gr.Radio(list(REGION_MODES), value=REGION_MODES[0], label="Region from")
                region_class = gr.Dropdown(list(ADE20K_CLASSES), value="water", label="Region class")
                click_label = gr.Radio(["add", "remove"], value="add", label="A click")
                region_clicks = gr.Textbox(value="[]", label="Region clicks (JSON)", info=CLICKS_EXAMPLE)
                clear = gr.Button("Clear clicks")
    with gr.Accordion("Second condition: pose (multi-condition methods)", open=False):
        with gr.Row():
            pose_mode = gr.Radio(list(POSE_MODES), value=POSE_MODES[0], label="Pose from")
            keypoints = gr.Textbox(
                value=dump([list(p) for p in DEFAULT_KEYPOINTS]), lines=3, label="Keypoints (18 joints, x/y in 0..1)"
            )
            pose_map = gr.Image(
                type="pil",
                label="Pose map (upload your own; starts as the standing skeleton)",
                sources=["upload"],
                height=160,
                value=render_pose(DEFAULT_KEYPOINTS, hub.working_size()),
            )

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

    def preview(value: Any, source: Any, map_from: str, mode: str, name: str, clicks: str) -> Any:
        names = ("segmap", "image", "map_source", "region_mode", "region_class", "region_clicks")
        return region_preview(hub, dict(zip(names, (value, source, map_from, mode, name, clicks), strict=True)))

    def add_click(clicks: str, label: str, mode: str, source: Any, evt: gr.SelectData) -> tuple[str, str]:
        x, y = relative_click(evt, display_size(hub.working_size(hub.source_image(source, required=False))))
        items = parse_json_list(clicks, "region clicks", CLICKS_EXAMPLE)
        items.append([round(x, 4), round(y, 4), 1 if label == "add" else 0])
        return dump(items), mode if mode in REGION_MODES[2:] else REGION_MODES[2]  # a click means click mode

    on_draw(paint_class.change, set_brush, paint_class, segmap)
    on_draw(segmap.change, refresh_legend, [segmap, image], classes)
    on_model(extract.click, extract_map, image, [segmap, map_source])
    on_draw(replace.click, replace_classes, [segmap, image, replace_from, replace_to], segmap)
    view_in = [segmap, image, map_source, region_mode, region_class, region_clicks]
    for widget in (segmap, image, map_source, region_mode, region_class, region_clicks):
        on_model(widget.change, preview, view_in, canvas)  # may segment the photo or run Segment Anything
    on_draw(canvas.select, add_click, [region_clicks, click_label, region_mode, image], [region_clicks, region_mode])
    on_draw(clear.click, lambda: "[]", None, region_clicks)
    widgets = {
        "segmap": segmap,
        "image": image,
        "prompt": prompt,
        "map_source": map_source,
        "region_mode": region_mode,
        "region_class": region_class,
        "region_clicks": region_clicks,
        "pose_mode": pose_mode,
        "keypoints": keypoints,
        "pose_map": pose_map,
    }
    build_tab(hub, CONDITION, widgets, build_inputs)
    gr.Examples(
        [
            ["assets/segmap_village.png", None, "a village by a lake, photo", "none", "keypoints"],
            ["assets/segmap_village.png", "assets/house.png", "a lake in autumn", "class", "none"],
        ],
        inputs=[segmap, image, prompt, region_mode, pose_mode],
    )
