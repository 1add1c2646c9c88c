"""The widgets of the input slots a tab's own widgets do not provide, and how their values are read.

``build_tab`` asks ``widget_for(slot)`` for every further slot one of the tab's methods declares and puts its
widgets under an accordion naming those methods. A slot with a widget registered here gets it; any other gets
the default widget of its kind (an upload for an image or a mask, a text box for text), so a method that
declares a new simple slot needs no UI code at all. ``read`` turns the widget values (by API name) into the
slot's value, after the tab's own ``build_inputs`` (so the source photo and condition map are known).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from demos.common import Hub, on_draw, on_model
from demos.widgets import (
    display_size,
    dump,
    editor_background,
    editor_layers,
    for_display,
    mask_editor,
    mask_from,
    parse_json_list,
    relative,
    relative_click,
)
from methods.core import masks
from methods.core.images import binary_mask, load_image, mask_overlay
from methods.core.limits import MAX_CLICKS, MAX_DRAG_PAIRS, at_most
from methods.core.pose import DEFAULT_KEYPOINTS, render_pose
from methods.core.segmap import ADE20K_CLASSES
from methods.core.segmenter import SegMap, class_mask, region_at
from methods.core.slots import MAP_REGION, MASK, REGIONS, SECOND_POSE, EditInputs, RegionPair, Slot
from methods.core.spec import Condition, InputError

if TYPE_CHECKING:
    from gradio.components import Component

Widgets = dict[str, "Component"]


@dataclass(frozen=True)
class SlotWidget:
    """``build(hub, condition, primary)`` makes the widgets (by API name; ``primary`` are the tab's own, to wire
    previews to); ``read(hub, values, inputs)`` is the slot's value (None = not given)."""

    build: Callable[[Hub, Condition, Widgets], Widgets]
    read: Callable[[Hub, dict[str, Any], EditInputs], Any]


_WIDGETS: dict[str, SlotWidget] = {}


def register_widget(slot: Slot, widget: SlotWidget) -> SlotWidget:
    _WIDGETS[slot.name] = widget
    return widget


def widget_for(slot: Slot) -> SlotWidget:
    if slot.name in _WIDGETS:
        return _WIDGETS[slot.name]
    if slot.kind not in _DEFAULTS:
        raise TypeError(f"slot {slot.name!r} ({slot.kind}) has no widget: register one in demos/slots.py")
    return _DEFAULTS[slot.kind](slot)


# -- defaults by kind ---------------------------------------------------------------------------------------
def _upload(slot: Slot) -> SlotWidget:
    def build(hub: Hub, condition: Condition, primary: Widgets) -> Widgets:
        label = slot.title if slot.kind == "image" else f"{slot.title} (white = the region)"
        upload = gr.Image(type="pil", label=label, sources=["upload", "clipboard"], elem_id=f"{condition}-{slot.name}")
        return {slot.name: upload}

    def read(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> Any:
        value = values.get(slot.name)
        if value is None:
            return None
        what = f"the {slot.title.lower()}"
        if slot.kind == "mask":
            return binary_mask(value, hub.working_size(inputs.image), what)
        return load_image(value, what)

    return SlotWidget(build, read)


def _text(slot: Slot) -> SlotWidget:
    def build(hub: Hub, condition: Condition, primary: Widgets) -> Widgets:
        return {slot.name: gr.Textbox(value="", label=slot.title, elem_id=f"{condition}-{slot.name}")}

    return SlotWidget(build, lambda hub, values, inputs: (values.get(slot.name) or "").strip())


_DEFAULTS: dict[str, Callable[[Slot], SlotWidget]] = {"image": _upload, "mask": _upload, "text": _text}


# -- a mask painted over the source photo, or uploaded ------------------------------------------------------
def _mask_build(hub: Hub, condition: Condition, primary: Widgets) -> Widgets:
    with gr.Row():
        drawing = mask_editor("Mask: paint the region to edit over the photo", elem_id=f"{condition}-mask-drawing")
        upload = gr.Image(type="pil", label="…or upload a mask (white = edit)", sources=["upload"], height=200)
    if "image" in primary:  # the editor's background follows the source photo, so the mask is painted over it
        on_draw(primary["image"].change, lambda im: im, primary["image"], drawing)
    return {"mask_drawing": drawing, "mask_image": upload}


def _mask_read(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> Image.Image | None:
    drawing, upload = values.get("mask_drawing"), values.get("mask_image")
    if inputs.image is None and editor_background(drawing) is not None:  # the photo was uploaded into the editor
        inputs.image = hub.source_image(editor_background(drawing))
    if inputs.image is None:
        if upload is not None or editor_layers(drawing):
            inputs.captions.append("the mask was ignored: it needs the source photo")
        return None
    mask = mask_from(drawing, upload, inputs.image.size)
    if mask is not None:
        inputs.captions.append(f"mask given ({masks.as_bool(mask).mean():.0%} of the photo)")
    return mask


register_widget(MASK, SlotWidget(_mask_build, _mask_read))


# -- a pose skeleton as a second condition map ---------------------------------------------------------------
POSE_MODES = ("none", "keypoints", "pose map")


def _pose_build(hub: Hub, condition: Condition, primary: Widgets) -> Widgets:
    with gr.Row():
        mode = gr.Radio(list(POSE_MODES), value=POSE_MODES[0], label="Pose from")
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
    return {"pose_mode": mode, "keypoints": keypoints, "pose_map": pose_map}


def _pose_read(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> Image.Image | None:
    from demos.pose import parse_keypoints

    mode, size = values.get("pose_mode") or POSE_MODES[0], hub.working_size(inputs.image)
    if mode == POSE_MODES[1]:
        inputs.captions.append("pose from keypoints")
        return render_pose(parse_keypoints(values.get("keypoints")), size)
    if mode == POSE_MODES[2]:
        if values.get("pose_map") is None:
            raise InputError("Upload a pose map (an OpenPose skeleton on black), or set the second condition to none.")
        inputs.captions.append("pose map")
        return load_image(values["pose_map"], "the pose map").resize(size)
    return None


register_widget(SECOND_POSE, SlotWidget(_pose_build, _pose_read))


# -- a region of the segmentation map: by class, by clicks on the map, or by Segment Anything clicks ---------
REGION_MODES = ("none", "class", "clicks on the map", "Segment Anything clicks on the photo")
CLICKS_EXAMPLE = "[[0.5, 0.7], [0.2, 0.3, 0]] (x, y in 0..1; optional label 1 = add, 0 = remove)"


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


def region_preview(hub: Hub, values: dict[str, Any]) -> Image.Image | None:
    """The map (or, for SAM, the photo) at display size with the picked region tinted and the clicks drawn."""
    from demos.segmentation import preview_map

    photo = hub.source_image(values.get("image"), required=False)
    size = hub.working_size(photo)
    segmap = preview_map(hub, values, photo, size)
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


def _region_build(hub: Hub, condition: Condition, primary: Widgets) -> Widgets:
    with gr.Row():
        canvas = gr.Image(
            type="pil", interactive=False, label="Click to pick regions", elem_id=f"{condition}-region", height=320
        )
        with gr.Column():
            mode = gr.Radio(list(REGION_MODES), value=REGION_MODES[0], label="Region from")
            name = gr.Dropdown(list(ADE20K_CLASSES), value="water", label="Region class")
            click_label = gr.Radio(["add", "remove"], value="add", label="A click")
            clicks = gr.Textbox(value="[]", label="Region clicks (JSON)", info=CLICKS_EXAMPLE)
            clear = gr.Button("Clear clicks")
    own = {"region_mode": mode, "region_class": name, "region_clicks": clicks}
    shown = {**{k: primary[k] for k in ("segmap", "image", "map_source") if k in primary}, **own}

    def preview(*values: Any) -> Any:
        return region_preview(hub, dict(zip(shown, values, strict=True)))

    def add_click(text: str, label: str, current: str, source: Any, evt: gr.SelectData) -> tuple[str, str]:
        x, y = relative_click(evt, display_size(hub.working_size(hub.source_image(source, required=False))))
        items = parse_json_list(text, "region clicks", CLICKS_EXAMPLE)
        items.append([round(x, 4), round(y, 4), 1 if label == "add" else 0])
        return dump(items), current if current in REGION_MODES[2:] else REGION_MODES[2]  # a click means click mode

    for widget in shown.values():
        on_model(widget.change, preview, list(shown.values()), canvas)  # may segment the photo or run SAM
    source = primary.get("image") or gr.State(None)
    on_draw(canvas.select, add_click, [clicks, click_label, mode, source], [clicks, mode])
    on_draw(clear.click, lambda: "[]", None, clicks)
    return own


def _region_read(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> Image.Image | None:
    mask, caption = region(hub, values, SegMap.from_image(inputs.control_image), inputs.image)
    if caption:
        inputs.captions.append(caption)
    return mask


register_widget(MAP_REGION, SlotWidget(_region_build, _region_read))


# -- drag regions: a handle rectangle and its target rectangle, four clicks a pair ---------------------------
REGIONS_EXAMPLE = "[[0.2, 0.4, 0.4, 0.6, 0.5, 0.4, 0.7, 0.6]] (handle x0, y0, x1, y1, then target x0, y0, x1, y1; 0..1)"


def parse_region_pairs(text: str | None, size: tuple[int, int]) -> list[RegionPair]:
    """Region pairs in relative coordinates -> pixels of an image of ``size`` (corners in any order)."""
    width, height = size
    pairs = []
    for number, item in enumerate(parse_json_list(text, "drag regions", REGIONS_EXAMPLE), start=1):
        if not (isinstance(item, list) and len(item) == 8):
            raise InputError(f"Each drag region pair is eight numbers, e.g. {REGIONS_EXAMPLE}.")
        values = [relative(v, "drag regions", REGIONS_EXAMPLE) for v in item]
        boxes = []
        for x0, y0, x1, y1 in (values[:4], values[4:]):
            left, right = math.floor(min(x0, x1) * width), math.ceil(max(x0, x1) * width)
            top, bottom = math.floor(min(y0, y1) * height), math.ceil(max(y0, y1) * height)
            if right - left < 2 or bottom - top < 2:
                raise InputError(f"A region of drag region pair {number} is too thin; click corners further apart.")
            boxes.append((left, top, right, bottom))
        pairs.append(RegionPair(boxes[0], boxes[1]))
    at_most(pairs, MAX_DRAG_PAIRS, "drag region pairs")
    return pairs


def _regions_build(hub: Hub, condition: Condition, primary: Widgets) -> Widgets:
    from methods.core.drag_regions import draw_regions

    with gr.Row():
        canvas = gr.Image(
            type="pil",
            interactive=False,
            label="Click 4 corners a pair: two for the handle region (red), two for its target (blue)",
            elem_id=f"{condition}-regions",
            height=320,
        )
        with gr.Column():
            text = gr.Textbox(value="[]", lines=2, label="Drag regions (JSON)", info=REGIONS_EXAMPLE)
            clear = gr.Button("Clear regions")
    corners = gr.State([])
    source = primary.get("image") or gr.State(None)

    def preview(value: str, photo: Any) -> Any:
        if photo is None:
            return None
        photo = hub.source_image(photo)
        shown = for_display(photo)
        try:
            pairs = parse_region_pairs(value, shown.size)
        except InputError:
            pairs = []
        return draw_regions(shown, pairs)

    def add_corner(value: str, pending: list[float], photo: Any, evt: gr.SelectData) -> tuple[str, list[float]]:
        if photo is None:
            raise gr.Error("Upload a photo first.")
        x, y = relative_click(evt, display_size(hub.source_image(photo).size))
        pending = [*pending, round(x, 4), round(y, 4)]
        if len(pending) < 8:
            return value, pending
        items = parse_json_list(value, "drag regions", REGIONS_EXAMPLE)
        return dump([*items, pending]), []

    for trigger in (text.change, source.change):
        on_draw(trigger, preview, [text, source], canvas)
    on_draw(canvas.select, add_corner, [text, corners, source], [text, corners])
    on_draw(clear.click, lambda: ("[]", []), None, [text, corners])
    return {"region_pairs": text}


def _regions_read(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> list[RegionPair] | None:
    if inputs.image is None:
        return None
    pairs = parse_region_pairs(values.get("region_pairs"), inputs.image.size)
    if pairs:
        inputs.captions.append(f"{len(pairs)} drag region pair(s)")
    return pairs or None


register_widget(REGIONS, SlotWidget(_regions_build, _regions_read))
