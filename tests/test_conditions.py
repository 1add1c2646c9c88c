"""The condition inputs the tabs make for the methods: pose maps, sketches, segmentation maps, masks,
and the normalisation of unusual uploads."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from demos import tabs
from demos.common import Hub
from demos.layout import parse_boxes
from demos.pose import parse_keypoints
from demos.sketch import scribble_map
from methods.core.examples import example_inputs
from methods.core.images import binary_mask, fit_image, load_image
from methods.core.pose import BODY_JOINTS, DEFAULT_KEYPOINTS, detect_pose, render_pose
from methods.core.segmap import ADE20K_CLASSES, class_color, classes_in, snap_to_palette
from methods.core.spec import Condition, InputError


def test_placed_keypoints_render_where_the_user_put_them() -> None:
    size = (160, 128)
    picture = np.asarray(render_pose(DEFAULT_KEYPOINTS, size))
    assert picture.shape == (128, 160, 3)
    for x, y in DEFAULT_KEYPOINTS:
        px, py = int(x * size[0]), int(y * size[1])
        assert picture[py - 1 : py + 2, px - 1 : px + 2].max() > 0, (x, y)
    assert picture[2, 2].max() == 0  # background stays black


def test_keypoints_json_is_validated() -> None:
    assert len(parse_keypoints("")) == len(BODY_JOINTS)
    with pytest.raises(InputError, match="18 entries"):
        parse_keypoints("[[0.5, 0.5]]")
    with pytest.raises(InputError, match="not valid JSON"):
        parse_keypoints("[[0.5,")


def test_pose_detection_runs_the_openpose_annotator(backbone) -> None:
    photo = fit_image(load_image("assets/house.png"), backbone.size, backbone.size_multiple)
    first, _ = detect_pose(backbone, photo)
    second, _ = detect_pose(backbone, photo)
    assert first.size == photo.size
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def test_sketch_strokes_become_white_on_black() -> None:
    page = Image.new("RGB", (64, 64), "white")
    page.paste((0, 0, 0), (10, 30, 54, 33))
    scribble = np.asarray(scribble_map(page, (32, 32)))
    assert scribble[16, 16].min() == 255 and scribble[2, 2].max() == 0
    with pytest.raises(InputError, match="empty"):
        scribble_map(Image.new("RGB", (64, 64), "white"), (32, 32))


def test_segmentation_map_snaps_to_the_ade20k_palette() -> None:
    clean = Image.new("RGB", (40, 20), class_color("sky"))
    clean.paste(class_color("grass"), (0, 10, 40, 20))
    noisy = np.asarray(clean).astype(np.int16) + np.random.default_rng(0).integers(-2, 3, (20, 40, 3))
    snapped, ids = snap_to_palette(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    np.testing.assert_array_equal(np.asarray(snapped), np.asarray(clean))
    assert dict(classes_in(ids)) == {"sky": 0.5, "grass": 0.5}
    assert len(ADE20K_CLASSES) == 150


def test_masks_and_boxes() -> None:
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    rgba.paste((255, 255, 255, 255), (0, 0, 5, 10))
    mask = binary_mask(rgba, (40, 20))
    assert mask.size == (40, 20) and np.asarray(mask)[:, :10].min() == 255 and np.asarray(mask)[:, 12:].max() == 0
    assert binary_mask(Image.new("L", (8, 8), 0), (8, 8)) is None  # an empty mask is no mask
    boxes = parse_boxes('[{"phrase": "a cat", "box": [0.6, 0.6, 0.1, 0.2]}]')
    assert boxes[0].as_list() == [0.1, 0.2, 0.6, 0.6]
    with pytest.raises(InputError, match="phrase"):
        parse_boxes('[{"phrase": " ", "box": [0, 0, 0.5, 0.5]}]')


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "I;16", "CMYK"])
def test_uploads_of_any_mode_become_rgb_at_working_size(backbone, mode: str) -> None:
    image = Image.new("RGB", (300, 200), (200, 100, 50)).convert(mode)
    hub = Hub(backbone)
    out = hub.source_image(image)
    assert out.mode == "RGB" and max(out.size) == backbone.size
    assert all(side % backbone.size_multiple == 0 for side in out.size)


def test_huge_photo_is_downscaled(backbone) -> None:
    out = Hub(backbone).source_image(Image.new("RGB", (6000, 4000), (10, 20, 30)))
    assert out.size == (128, 64)  # longest side 128, sides multiples of 64 (SD 1.5's four UNet levels)


@pytest.mark.parametrize("condition", list(Condition))
def test_condition_cell_comes_first_with_a_caption(backbone, condition: Condition) -> None:
    inputs = example_inputs(condition, backbone)
    tab = next(t.TAB for t in tabs() if t.CONDITION is condition)  # each tab draws its own condition cell
    picture, caption = tab.condition_cell(Hub(backbone), inputs)
    assert isinstance(picture, Image.Image) and caption


def test_detected_hands_and_face_are_drawn_on_the_pose_map(backbone, monkeypatch) -> None:
    """The hand / face toggles reach controlnet_aux's drawing (which needs matplotlib, a requirement). The
    tiny OpenPose has random weights and finds nobody, so the detector's answer is scripted here."""
    from controlnet_aux.open_pose import PoseResult
    from controlnet_aux.open_pose.body import BodyResult, Keypoint

    body = BodyResult([Keypoint(0.5, 0.2), Keypoint(0.5, 0.3), *[None] * 16], 1.0, 2)
    hand = [Keypoint(0.2 + 0.01 * i, 0.6 + 0.005 * i) for i in range(21)]
    face = [Keypoint(0.45 + 0.002 * i, 0.1) for i in range(68)]
    detector = backbone.addon("openpose")
    asked = []

    def scripted(image, include_hand=False, include_face=False):  # noqa: ANN001, ANN202 - test double
        asked.append((include_hand, include_face))
        return [PoseResult(body, hand, None, face)]

    monkeypatch.setattr(detector, "detect_poses", scripted)
    photo = Image.new("RGB", (128, 128))
    body_only, keypoints = detect_pose(backbone, photo)
    full, _ = detect_pose(backbone, photo, hands=True, face=True)
    assert asked == [(False, False), (True, True)]
    assert keypoints[:2] == [(0.5, 0.2), (0.5, 0.3)] and keypoints[2] is None
    added = np.abs(np.asarray(full, dtype=np.int16) - np.asarray(body_only, dtype=np.int16)).max(axis=2) > 0
    assert added[76:90, 24:48].any()  # the hand, drawn where its keypoints are
    assert added[10:16, 54:76].any()  # the face
    assert not added[110:, :].any()  # and nothing else
