"""Pose maps in the OpenPose format ControlNet / T2I-Adapter expect: detected from a photo, or drawn
from keypoints the user placed (controlnet_aux renders both; no model is needed to draw)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from methods.core.spec import InputError

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

# OpenPose COCO-18 body joints, in the order controlnet_aux draws them.
BODY_JOINTS = (
    "nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow",
    "left wrist", "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle",
    "right eye", "left eye", "right ear", "left ear",
)  # fmt: skip

# A standing person facing the viewer, in relative coordinates (x, y in 0..1).
DEFAULT_KEYPOINTS: tuple[tuple[float, float], ...] = (
    (0.50, 0.16), (0.50, 0.26), (0.40, 0.26), (0.36, 0.40), (0.34, 0.53), (0.60, 0.26), (0.64, 0.40),
    (0.66, 0.53), (0.44, 0.53), (0.44, 0.71), (0.44, 0.88), (0.56, 0.53), (0.56, 0.71), (0.56, 0.88),
    (0.48, 0.14), (0.52, 0.14), (0.46, 0.15), (0.54, 0.15),
)  # fmt: skip

Keypoints = Sequence[tuple[float, float] | None]


def render_pose(keypoints: Keypoints, size: tuple[int, int]) -> Image.Image:
    """Draw one body (relative coordinates; None = joint absent) on a black canvas of ``size``."""
    from controlnet_aux.open_pose import BodyResult, Keypoint, PoseResult, draw_poses

    if len(keypoints) != len(BODY_JOINTS):
        raise InputError(f"A pose needs {len(BODY_JOINTS)} keypoints, got {len(keypoints)}.")
    points = [None if p is None else Keypoint(float(p[0]), float(p[1])) for p in keypoints]
    if sum(p is not None for p in points) < 2:
        raise InputError("Place at least two joints so that a limb can be drawn.")
    body = BodyResult(keypoints=points, total_score=float(len(points)), total_parts=len(points))
    width, height = size
    canvas = draw_poses([PoseResult(body, None, None, None)], height, width, draw_hand=False, draw_face=False)
    return Image.fromarray(canvas)


def detect_pose(
    backbone: Backbone, image: Image.Image, hands: bool = False, face: bool = False
) -> tuple[Image.Image, list[tuple[float, float] | None] | None]:
    """OpenPose on a photo: the pose map at the photo's size and the first person's body keypoints."""
    from controlnet_aux.open_pose import draw_poses

    detector = backbone.addon("openpose")
    array = np.asarray(image.convert("RGB"))
    poses = detector.detect_poses(array, include_hand=hands, include_face=face)
    height, width = array.shape[:2]
    canvas = draw_poses(poses, height, width, draw_body=True, draw_hand=hands, draw_face=face)
    keypoints = None
    if poses:
        keypoints = [None if k is None else (float(k.x), float(k.y)) for k in poses[0].body.keypoints]
    return Image.fromarray(canvas), keypoints
