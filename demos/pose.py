"""Pose tab: the pose map comes from a photo (OpenPose), from keypoints placed by clicks, or an upload."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, banner, build_tab
from demos.widgets import Photo, display_size, dump, parse_json_list, relative_click
from methods.core.images import fit_image, load_image
from methods.core.pose import BODY_JOINTS, DEFAULT_KEYPOINTS, detect_pose, render_pose
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
        elif isinstance(point, list) and len(point) == 2 and all(isinstance(v, int | float) for v in point):
            parsed.append((min(max(float(point[0]), 0.0), 1.0), min(max(float(point[1]), 0.0), 1.0)))
        else:
            raise InputError(f"Each keypoint must be [x, y] in 0..1 or null; got {point!r}.")
    return parsed


def pose_map(hub: Hub, values: dict[str, Any], size: tuple[int, int]) -> tuple[Any, str]:
    mode = values["pose_mode"]
    if mode == "detect from photo":
        photo = values["pose_photo"] if values["pose_photo"] is not None else values["image"]
        if photo is None:
            raise InputError("Upload a photo of a person to detect the pose from (or switch the pose mode).")
        photo = fit_image(load_image(photo, "the pose photo"), hub.backbone.size, hub.backbone.size_multiple)
        picture, keypoints = detect_pose(hub.backbone, photo)
        if keypoints is None:
            raise InputError("OpenPose found no person in the photo. Try another photo or place keypoints by hand.")
        return picture.resize(size), f"detected by OpenPose ({sum(k is not None for k in keypoints)} joints)"
    if mode == "upload pose map":
        if values["pose_map"] is None:
            raise InputError("Upload a pose map (an OpenPose skeleton on black), or switch the pose mode.")
        return load_image(values["pose_map"], "the pose map").resize(size), "uploaded"
    keypoints = parse_keypoints(values["keypoints"])
    return render_pose(keypoints, size), f"{sum(k is not None for k in keypoints)} joints placed"


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    size = inputs.image.size if inputs.image is not None else (hub.backbone.size, hub.backbone.size)
    inputs.control_image, caption = pose_map(hub, values, size)
    inputs.notes["condition_caption"] = f"pose {caption}"
    inputs.prompt = (values["prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt describing the person to draw in this pose.")
    return inputs


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = Photo(
            type="pil",
            label="Source photo (optional: without it, methods generate)",
            sources=["upload", "clipboard"],
            elem_id="pose-image",
        )
        with gr.Column():
            mode = gr.Radio(list(MODES), value=MODES[0], label="Pose from")
            pose_photo = Photo(
                type="pil", label="Photo to detect the pose from (default: the source)", sources=["upload"], height=160
            )
            uploaded = Photo(type="pil", label="Pose map upload", sources=["upload"], height=160)
    with gr.Row():
        canvas = Photo(
            type="pil",
            label="Pose preview: pick a joint, then click where it goes",
            interactive=False,
            elem_id="pose-canvas",
            height=360,
            value=render_pose(DEFAULT_KEYPOINTS, display_size((hub.backbone.size,) * 2)),
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

    def canvas_size(source: Any) -> tuple[int, int]:
        size = hub.source_image(source, required=False).size if source is not None else (hub.backbone.size,) * 2
        return display_size(size)

    def preview(text: str, source: Any) -> Any:
        size = canvas_size(source)
        try:
            return render_pose(parse_keypoints(text), size)
        except InputError as error:
            raise gr.Error(str(error)) from None

    def move_joint(text: str, name: str, source: Any, evt: gr.SelectData) -> tuple[str, Any]:
        points = [None if p is None else list(p) for p in parse_keypoints(text)]
        x, y = relative_click(evt, canvas_size(source))
        points[BODY_JOINTS.index(name)] = [round(x, 4), round(y, 4)]
        new_text = dump(points)
        return new_text, preview(new_text, source)

    keypoints.change(preview, [keypoints, image], canvas, api_visibility="private")
    image.change(preview, [keypoints, image], canvas, api_visibility="private")
    canvas.select(move_joint, [keypoints, joint, image], [keypoints, canvas], api_visibility="private")
    reset.click(lambda: dump([list(p) for p in DEFAULT_KEYPOINTS]), None, keypoints, api_visibility="private")
    widgets = {
        "image": image,
        "pose_mode": mode,
        "pose_photo": pose_photo,
        "pose_map": uploaded,
        "keypoints": keypoints,
        "prompt": prompt,
    }
    build_tab(hub, CONDITION, widgets, build_inputs)
    gr.Examples(
        [[None, "keypoints", None, None, dump([list(p) for p in DEFAULT_KEYPOINTS]), "an astronaut"]],
        inputs=[image, mode, pose_photo, uploaded, keypoints, prompt],
    )
