"""Pose tab: the pose map comes from keypoints placed by clicks (the default skeleton, or a pose detected by
OpenPose and then moved), from a photo (OpenPose with body / hands / face toggles), or an upload. Methods
that redraw only a region declare a mask; its widgets come with them (``demos/slots.py``)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from demos.common import Hub, Tab, add_examples, banner, build_tab, map_cell, on_draw, on_model
from demos.widgets import display_size, dump, parse_json_list, relative_click
from methods.core.images import load_image
from methods.core.limits import is_number, shown
from methods.core.pose import BODY_JOINTS, DEFAULT_KEYPOINTS, Keypoints, detect_pose, render_pose
from methods.core.slots import CONDITION_MAP, IMAGE, PROMPT
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.POSE
MODES = ("keypoints", "detect from photo", "upload pose map")
KEYPOINT_EXAMPLE = "[[0.5, 0.16], [0.5, 0.26], null, ...] (18 joints, x/y in 0..1)"


def parse_keypoints(text: str | None) -> list[tuple[float, float] | None]:
    points = parse_json_list(text, "keypoints", KEYPOINT_EXAMPLE) or [list(p) for p in DEFAULT_KEYPOINTS]
    if len(points) != len(BODY_JOINTS):
        raise InputError(f"The keypoints list needs {len(BODY_JOINTS)} entries (one per joint, null if absent).")
    parsed = []
    for point in points:
        if point is None:
            parsed.append(None)
        elif isinstance(point, list) and len(point) == 2 and all(is_number(v) for v in point):  # NaN: refused
            parsed.append((min(max(float(point[0]), 0.0), 1.0), min(max(float(point[1]), 0.0), 1.0)))
        else:
            raise InputError(f"Each keypoint must be [x, y] in 0..1 or null; got {shown(point)}.")
    return parsed


def keypoints_text(keypoints: Keypoints) -> str:
    return dump([None if p is None else [round(float(p[0]), 4), round(float(p[1]), 4)] for p in keypoints])


def move_keypoint(text: str, joint: str, x: float, y: float) -> str:
    """The keypoints JSON with ``joint`` moved to (x, y) (relative); an absent joint is placed there."""
    points = list(parse_keypoints(text))
    points[BODY_JOINTS.index(joint)] = (x, y)
    return keypoints_text(points)


def pose_photo_of(hub: Hub, pose_photo: Any, source: Any) -> Image.Image:
    photo = pose_photo if pose_photo is not None else source
    if photo is None:
        raise InputError("Upload a photo of a person to detect the pose from (or switch the pose mode).")
    return hub.source_image(photo, "the pose photo")


def detected_keypoints(hub: Hub, pose_photo: Any, source: Any) -> str:
    """OpenPose's body keypoints of the first person, as the editable keypoints JSON."""
    photo = pose_photo_of(hub, pose_photo, source)
    _, keypoints = detect_pose(hub.backbone, photo)
    if keypoints is None:
        raise InputError("OpenPose found no person in the photo. Try another photo or place keypoints by hand.")
    return keypoints_text(keypoints)


def pose_preview(keypoints: Keypoints, size: tuple[int, int], photo: Image.Image | None = None) -> Image.Image:
    """The skeleton to click on: over the dimmed photo when there is one (the methods get it on black)."""
    skeleton = render_pose(keypoints, size)
    if photo is None:
        return skeleton
    bones = np.asarray(skeleton)
    under = np.asarray(photo.convert("RGB").resize(size), dtype=np.float32) * 0.45
    drawn = bones.max(axis=2, keepdims=True) > 0
    return Image.fromarray(np.where(drawn, bones, under.astype(np.uint8)))


def pose_map(hub: Hub, values: dict[str, Any], size: tuple[int, int]) -> tuple[Any, str]:
    mode = values["pose_mode"]
    if mode == "detect from photo":
        hands, face = bool(values.get("detect_hands")), bool(values.get("detect_face"))
        photo = pose_photo_of(hub, values["pose_photo"], values["image"])
        picture, keypoints = detect_pose(hub.backbone, photo, hands=hands, face=face)
        if keypoints is None:
            raise InputError("OpenPose found no person in the photo. Try another photo or place keypoints by hand.")
        parts = " + ".join(["body", *(["hands"] if hands else []), *(["face"] if face else [])])
        joints = sum(k is not None for k in keypoints)
        return picture.resize(size), f"detected by OpenPose ({parts}; {joints} body joints)"
    if mode == "upload pose map":
        if values["pose_map"] is None:
            raise InputError("Upload a pose map (an OpenPose skeleton on black), or switch the pose mode.")
        return load_image(values["pose_map"], "the pose map").resize(size), "uploaded"
    keypoints = parse_keypoints(values["keypoints"])
    return render_pose(keypoints, size), f"{sum(k is not None for k in keypoints)} joints placed"


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    size = hub.working_size(inputs.image)
    inputs.control_image, caption = pose_map(hub, values, size)
    inputs.captions.append(f"pose {caption}")
    inputs.prompt = (values["prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt describing the person to draw in this pose.")
    return inputs


TAB = Tab(CONDITION, (IMAGE, CONDITION_MAP, PROMPT), build_inputs, map_cell(CONDITION), addons=("openpose",))

# The pose of the astronaut in assets/astronaut.jpg, placed by looking at the photo (her hips and legs are out of
# the frame, her left wrist is behind the helmet), and the same pose waving: her right arm (image left) raised.
ASTRONAUT_POSE: list[list[float] | None] = [
    [0.438, 0.246], [0.434, 0.465], [0.186, 0.512], [0.078, 0.82], [0.273, 0.961], [0.664, 0.512], [0.699, 0.82],
    None, None, None, None, None, None, None, [0.395, 0.197], [0.482, 0.201], [0.348, 0.221], [0.531, 0.221],
]  # fmt: skip
ASTRONAUT_WAVING = [*ASTRONAUT_POSE[:3], [0.088, 0.332], [0.137, 0.137], *ASTRONAUT_POSE[5:]]
# Example rows by widget name (the mask is the mask slot's upload: the region re-posing redraws, around the raised
# arm): the photo first (assets/README.md), then the default skeleton.
EXAMPLES: list[dict[str, Any]] = [
    {
        "image": "assets/astronaut.jpg",
        "pose_mode": "keypoints",
        "keypoints": dump(ASTRONAUT_WAVING),
        "mask_image": "assets/astronaut_arm_mask.png",
        "prompt": "an astronaut in an orange spacesuit waving her hand",
    },
    {
        "image": "assets/astronaut.jpg",
        "pose_mode": "keypoints",
        "keypoints": dump(ASTRONAUT_POSE),
        "mask_image": None,
        "prompt": "a smiling firefighter in an orange uniform, photo",
    },
    {
        "image": None,
        "pose_mode": "keypoints",
        "keypoints": dump([list(p) for p in DEFAULT_KEYPOINTS]),
        "mask_image": None,
        "prompt": "an astronaut",
    },
]


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = gr.Image(
            type="pil",
            label="Source photo (optional: without it, methods generate)",
            sources=["upload", "clipboard"],
            elem_id="pose-image",
        )
        with gr.Column():
            mode = gr.Radio(list(MODES), value=MODES[0], label="Pose from")
            pose_photo = gr.Image(
                type="pil", label="Photo to detect the pose from (default: the source)", sources=["upload"], height=160
            )
            with gr.Row():
                hands = gr.Checkbox(value=False, label="Detect hands", info="“detect from photo” mode")
                face = gr.Checkbox(value=False, label="Detect face", info="“detect from photo” mode")
            detect = gr.Button("Detect the pose → editable keypoints (body)", elem_id="pose-detect")
            uploaded = gr.Image(type="pil", label="Pose map upload", sources=["upload"], height=160)
    with gr.Row():
        canvas = gr.Image(
            type="pil",
            label="Pose preview: pick a joint, then click where it goes",
            interactive=False,
            elem_id="pose-canvas",
            height=360,
            value=render_pose(DEFAULT_KEYPOINTS, display_size(hub.working_size())),
        )
        with gr.Column():
            joint = gr.Dropdown(list(BODY_JOINTS), value=BODY_JOINTS[4], label="Joint to move on click")
            keypoints = gr.Textbox(
                value=dump([list(p) for p in DEFAULT_KEYPOINTS]),
                lines=4,
                label="Keypoints (JSON, 18 joints, x/y in 0..1, null = absent)",
            )
            reset = gr.Button("Reset to standing pose")
            prompt = gr.Textbox(value="", label="Prompt", placeholder="a dancer on a stage")

    def source_of(source: Any) -> Image.Image | None:
        return hub.source_image(source, required=False) if source is not None else None

    def canvas_size(source: Any) -> tuple[int, int]:
        photo = source_of(source)
        return display_size(hub.working_size(photo))

    def preview(text: str, source: Any) -> Any:
        return pose_preview(parse_keypoints(text), canvas_size(source), source_of(source))

    def move_joint(text: str, name: str, source: Any, evt: gr.SelectData) -> str:
        x, y = relative_click(evt, canvas_size(source))
        return move_keypoint(text, name, x, y)

    def detect_into_keypoints(photo: Any, source: Any) -> tuple[str, str]:
        return detected_keypoints(hub, photo, source), MODES[0]

    on_draw(keypoints.change, preview, [keypoints, image], canvas)
    on_draw(image.change, preview, [keypoints, image], canvas)
    on_draw(canvas.select, move_joint, [keypoints, joint, image], keypoints)
    on_draw(reset.click, lambda: dump([list(p) for p in DEFAULT_KEYPOINTS]), None, keypoints)
    on_model(detect.click, detect_into_keypoints, [pose_photo, image], [keypoints, mode])
    widgets = {
        "image": image,
        "pose_mode": mode,
        "pose_photo": pose_photo,
        "pose_map": uploaded,
        "keypoints": keypoints,
        "prompt": prompt,
        "detect_hands": hands,
        "detect_face": face,
    }
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
