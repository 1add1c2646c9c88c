"""Pose and sketch methods on the tiny backbone: each equals a direct diffusers call with the same seed (pipeline
built by hand), the control and its parameters matter, re-posing keeps the photo outside the mask, and the
pose / sketch tabs turn detected-then-moved keypoints, colour strokes and extracted lines into the maps the
methods receive."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    StableDiffusionAdapterPipeline,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    T2IAdapter,
)
from PIL import Image

from demos import pose, sketch
from demos.common import Hub, read_inputs
from demos.pose import detected_keypoints, move_keypoint, parse_keypoints, pose_preview
from demos.sketch import canvas_value, line_map, scribble_map, stroke_painting
from methods.controlnet_repose import ControlNetRepose
from methods.core.annotators import extract_lines
from methods.core.controlnet import controlnet_call
from methods.core.examples import example_inputs
from methods.core.pose import BODY_JOINTS, render_pose
from methods.core.runner import run_comparison
from methods.core.slots import STROKES
from methods.core.spec import EditInputs, InputError, RunContext
from methods.core.t2i_adapter import ADAPTER_PARAMS, adapter_call, adapter_for_first_steps
from tests.helpers import assert_same_image, direct_components, seeded_generator, weights_checksum


def pose_inputs(hub: Hub, values: dict, inputs: EditInputs) -> EditInputs:
    """What the pose tab hands the methods: its own widgets' values, then the further slots' (the mask)."""
    return read_inputs(hub, pose.TAB, values, inputs)


def sketch_inputs(hub: Hub, values: dict, inputs: EditInputs) -> EditInputs:
    return read_inputs(hub, sketch.TAB, values, inputs)


SEED = 7


def _generator() -> torch.Generator:
    return seeded_generator(SEED)


def _differ(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


# -- T2I-Adapter -------------------------------------------------------------------------------------------

ADAPTERS = [("t2i_adapter_openpose", "pose", 3), ("t2i_adapter_sketch", "sketch", 1)]


@pytest.mark.parametrize(("name", "condition", "channels"), ADAPTERS)
def test_t2i_adapter_equals_adapter_pipeline_and_control_matters(backbone, name, condition, channels) -> None:
    inputs = example_inputs(condition, backbone)
    params = {"adapter_conditioning_scale": 0.8}
    hub = run_comparison(backbone, condition, [name], inputs, SEED, params={name: params})
    adapter = backbone.addon(name)
    assert isinstance(adapter, T2IAdapter) and adapter.config.in_channels == channels  # sketch: one grey channel
    pipe = StableDiffusionAdapterPipeline(**direct_components(backbone, adapter=adapter))
    width, height = inputs.image.size  # the photo sets the size; the adapter pipeline generates
    direct = pipe(
        prompt=inputs.prompt,
        image=inputs.control_image.convert("RGB" if channels == 3 else "L"),
        height=height,
        width=width,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        adapter_conditioning_scale=0.8,
        generator=_generator(),
    ).images[0]
    assert_same_image(hub.result(name), direct)
    off = run_comparison(backbone, condition, [name], inputs, SEED, params={name: {"adapter_conditioning_scale": 0}})
    assert _differ(off.result(name), hub.result(name)) > 0.25  # mean of 255; measured 0.68-0.70 on tiny-v3
    inputs.control_image = inputs.control_image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)  # another map
    flipped = run_comparison(backbone, condition, [name], inputs, SEED, params={name: params})
    assert _differ(flipped.result(name), hub.result(name)) > 0.25


def _adapter_latents(backbone, inputs: EditInputs, factor: float) -> list[torch.Tensor]:
    """Latents after each step of the hub's adapter call, with the adapter on for int(steps x factor) steps."""
    params = {"adapter_conditioning_scale": 1.0, "adapter_conditioning_factor": factor}
    pipe, kwargs = adapter_call(RunContext(backbone, SEED, _generator()), inputs, params, "t2i_adapter_openpose")
    latents: list[torch.Tensor] = []
    with adapter_for_first_steps(pipe.unet, int(inputs.steps * factor)):
        pipe(**kwargs, output_type="latent", callback=lambda step, t, x: latents.append(x.clone()))
    return latents


def test_t2i_adapter_factor_applies_the_adapter_to_the_first_steps_only(backbone) -> None:
    inputs = example_inputs("pose", backbone)
    assert inputs.steps == 4
    full, half = _adapter_latents(backbone, inputs, 1.0), _adapter_latents(backbone, inputs, 0.5)
    for step in (0, 1):  # adapter on in both runs: identical
        torch.testing.assert_close(half[step], full[step], rtol=0, atol=0)
    for step in (2, 3):  # adapter dropped in the half run
        assert (half[step] - full[step]).abs().max() > 1e-3
    # Factor 0: no adapter at any step, i.e. the plain text-to-image pipeline with the same seed.
    name = "t2i_adapter_openpose"
    width, height = inputs.image.size
    plain = StableDiffusionPipeline(**direct_components(backbone))
    call = {"prompt": inputs.prompt, "height": height, "width": width, "num_inference_steps": inputs.steps}
    plain_latents = plain(**call, guidance_scale=inputs.guidance, generator=_generator(), output_type="latent")
    torch.testing.assert_close(_adapter_latents(backbone, inputs, 0.0)[-1], plain_latents.images, rtol=0, atol=0)
    hub = run_comparison(backbone, "pose", [name], inputs, SEED, params={name: {"adapter_conditioning_factor": 0}})
    plain_image = plain(**call, guidance_scale=inputs.guidance, generator=_generator()).images[0]
    # The adapter pipeline decodes with its older decode_latents (x / 2 + 0.5, not VaeImageProcessor's
    # x * 0.5 + 0.5): identical latents, pixels within one rounding step.
    assert_same_image(hub.result(name), plain_image, atol=1)


def test_t2i_adapter_factor_hook_is_removed_even_on_error(backbone) -> None:
    hooks = len(backbone.unet._forward_pre_hooks)
    with pytest.raises(RuntimeError), adapter_for_first_steps(backbone.unet, 1):
        assert len(backbone.unet._forward_pre_hooks) == hooks + 1
        raise RuntimeError("boom")
    assert len(backbone.unet._forward_pre_hooks) == hooks
    inputs = example_inputs("pose", backbone)
    backbone.addon("t2i_adapter_openpose")
    before, weights = backbone.state_fingerprint(), weights_checksum(backbone)
    params = {"t2i_adapter_openpose": {"adapter_conditioning_factor": 0.5}}
    run_comparison(backbone, "pose", ["t2i_adapter_openpose"], inputs, SEED, params=params)
    assert backbone.state_fingerprint() == before and weights_checksum(backbone) == weights
    assert {p.name for p in ADAPTER_PARAMS} == {"adapter_conditioning_scale", "adapter_conditioning_factor"}


# -- ControlNet Lineart ------------------------------------------------------------------------------------


def test_controlnet_lineart_equals_pipelines_and_control_matters(backbone) -> None:
    name, inputs = "controlnet_lineart", example_inputs("sketch", backbone)
    params = {"conditioning_scale": 0.8, "control_start": 0.0, "control_end": 1.0, "strength": 0.9}
    hub = run_comparison(backbone, "sketch", [name], inputs, SEED, params={name: params})
    components = direct_components(backbone, controlnet=backbone.addon(name))
    width, height = inputs.image.size
    direct = StableDiffusionControlNetImg2ImgPipeline(**components)(
        prompt=inputs.prompt,
        image=inputs.image,
        control_image=inputs.control_image,
        strength=0.9,
        controlnet_conditioning_scale=0.8,
        num_inference_steps=inputs.steps,
        height=height,
        width=width,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    assert_same_image(hub.result(name), direct)
    inputs.image = None  # without a photo: generated from the line drawing
    generated = run_comparison(backbone, "sketch", [name], inputs, SEED)
    width, height = inputs.control_image.size
    direct = StableDiffusionControlNetPipeline(**components)(
        prompt=inputs.prompt,
        image=inputs.control_image,
        height=height,
        width=width,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    assert_same_image(generated.result(name), direct)
    off = run_comparison(backbone, "sketch", [name], inputs, SEED, params={name: {"conditioning_scale": 0.0}})
    assert _differ(off.result(name), generated.result(name)) > 1.0
    # The map's content matters, not only its presence: the same sketch mirrored (measured: mean 1.85 / 255).
    inputs.control_image = inputs.control_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    mirrored = run_comparison(backbone, "sketch", [name], inputs, SEED)
    assert _differ(mirrored.result(name), generated.result(name)) > 0.5


# -- Re-pose inside a mask ---------------------------------------------------------------------------------


def _repose_direct(backbone, inputs: EditInputs, unet_choice: str) -> Image.Image:
    unet = backbone.addon("inpaint_unet") if unet_choice == "inpainting" else backbone.unet
    pipe = StableDiffusionControlNetInpaintPipeline(
        **direct_components(backbone, controlnet=backbone.addon("controlnet_openpose"), unet=unet)
    )
    width, height = inputs.image.size
    return pipe(
        prompt=inputs.prompt,
        image=inputs.image,
        mask_image=inputs.mask,
        control_image=inputs.control_image,
        height=height,
        width=width,
        strength=1.0,
        controlnet_conditioning_scale=0.8,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]


@pytest.mark.parametrize("unet", ["inpainting", "base"])
def test_repose_equals_controlnet_inpaint_pipeline(backbone, unet: str) -> None:
    inputs = example_inputs("pose", backbone)
    params = {"unet": unet, "keep_unmasked": False, "conditioning_scale": 0.8}
    hub = run_comparison(backbone, "pose", ["controlnet_repose"], inputs, SEED, params={"controlnet_repose": params})
    assert_same_image(hub.result("controlnet_repose"), _repose_direct(backbone, inputs, unet))


def test_repose_keeps_the_photo_outside_the_mask_and_follows_the_pose_inside(backbone) -> None:
    inputs = example_inputs("pose", backbone)
    name, params = "controlnet_repose", {"conditioning_scale": 0.8}
    out = np.asarray(run_comparison(backbone, "pose", [name], inputs, SEED, params={name: params}).result(name))
    src, inside = np.asarray(inputs.image), np.asarray(inputs.mask) > 127
    assert 0.2 < inside.mean() < 0.8
    np.testing.assert_array_equal(out[~inside], src[~inside])  # exactly kept: pasted back (apply_overlay)
    raw = np.asarray(_repose_direct(backbone, inputs, "inpainting"))
    np.testing.assert_array_equal(out[inside], raw[inside])  # the model's own pixels inside
    # The ControlNet acts inside only. (The tiny OpenPose ControlNet, an older builder, hardly reads the map's
    # content: two different skeletons move its residuals by ~1e-5, so here "control" is on versus off.)
    params = {"conditioning_scale": 0.0}
    off = np.asarray(run_comparison(backbone, "pose", [name], inputs, SEED, params={name: params}).result(name))
    np.testing.assert_array_equal(off[~inside], src[~inside])
    assert np.abs(off[inside].astype(float) - out[inside]).mean() > 1.0  # measured: about 9


def test_repose_base_unet_keeps_the_photo_latents_outside_the_mask(backbone) -> None:
    """Base UNet, no paste-back: outside the (latent-resolution) mask the final latents are the photo's own VAE
    latents, exactly; in pixels that is the VAE round trip (the decoder then mixes in the new inside)."""
    inputs = example_inputs("pose", backbone)
    params = ControlNetRepose.resolve_params({"unet": "base", "keep_unmasked": False})
    pipe, kwargs = controlnet_call(
        RunContext(backbone, SEED, _generator()), inputs, params, "controlnet_openpose", masked=True
    )
    latents = pipe(**kwargs, output_type="latent").images
    width, height = inputs.image.size
    photo = pipe.image_processor.preprocess(inputs.image, height=height, width=width)
    photo_latents = pipe._encode_vae_image(photo, generator=_generator())  # the pipeline's first draw
    mask = pipe.mask_processor.preprocess(inputs.mask, height=height, width=width)
    outside = torch.nn.functional.interpolate(mask, size=latents.shape[-2:])[0, 0] < 0.5
    assert 0.2 < outside.float().mean() < 0.8
    difference = (latents - photo_latents).abs()[0].amax(0)
    assert difference[outside].max() == 0  # measured: 0.0
    assert difference[~outside].mean() > 1.0  # measured: about 7 inside


def test_repose_is_skipped_without_a_mask(backbone) -> None:
    inputs = example_inputs("pose", backbone)
    inputs.mask = None
    record = run_comparison(backbone, "pose", ["controlnet_repose"], inputs, SEED).records[0]
    assert record["status"] == "skipped" and "needs a mask" in record["message"]


# -- SDEdit from strokes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_photo", [True, False])
def test_sdedit_strokes_equals_img2img_on_the_stroke_painting(backbone, with_photo: bool) -> None:
    inputs = example_inputs("sketch", backbone)
    if not with_photo:
        inputs.image = None
    strokes = inputs[STROKES]
    hub = run_comparison(backbone, "sketch", ["sdedit_strokes"], inputs, SEED, params={"sdedit_strokes": {}})
    direct = StableDiffusionImg2ImgPipeline(**direct_components(backbone))(
        prompt=inputs.prompt,
        image=strokes,
        strength=0.75,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    assert_same_image(hub.result("sdedit_strokes"), direct)
    assert _differ(hub.result("sdedit_strokes"), strokes) > 1.0  # an edit, not the painting handed back


def test_sdedit_strokes_needs_the_painting(backbone) -> None:
    inputs = example_inputs("sketch", backbone)
    inputs[STROKES] = None
    record = run_comparison(backbone, "sketch", ["sdedit_strokes"], inputs, SEED).records[0]
    assert record["status"] == "skipped" and "stroke painting" in record["message"]


# -- The pose tab: detected keypoints become editable ------------------------------------------------------

# A pose OpenPose could answer (relative x, y; None = not found): arms down, the left ear hidden.
DETECTED = [
    (0.52, 0.18), (0.52, 0.3), (0.42, 0.3), (0.35, 0.45), (0.3, 0.6), (0.62, 0.3), (0.68, 0.45),
    (0.72, 0.6), (0.46, 0.58), (0.45, 0.75), (0.45, 0.92), (0.58, 0.58), (0.6, 0.75), (0.6, 0.92),
    (0.5, 0.16), (0.54, 0.16), (0.48, 0.17), None,
]  # fmt: skip


def _lit(picture: np.ndarray, point: tuple[float, float]) -> bool:
    height, width = picture.shape[:2]
    px, py = int(point[0] * width), int(point[1] * height)
    return bool(picture[max(py - 1, 0) : py + 2, max(px - 1, 0) : px + 2].max() > 0)


def test_detected_then_moved_keypoints_render_where_the_user_put_them(backbone, photo, monkeypatch) -> None:
    hub = Hub(backbone)
    # Tiny random OpenPose weights find nobody (measured on the house asset, the synthetic photo, a rendered
    # skeleton and noise): the tab says so in a sentence.
    with pytest.raises(InputError, match="no person"):
        detected_keypoints(hub, photo, None)
    # The detector's answer is replaced by a known pose, in controlnet_aux's own result types.
    from controlnet_aux.open_pose import BodyResult, Keypoint, PoseResult

    body = BodyResult([None if p is None else Keypoint(*p) for p in DETECTED], total_score=17.0, total_parts=17)
    detector = backbone.addon("openpose")
    monkeypatch.setattr(detector, "detect_poses", lambda *a, **k: [PoseResult(body, None, None, None)])
    text = detected_keypoints(hub, photo, None)
    assert parse_keypoints(text) == DETECTED  # the JSON the canvas edits holds the detected joints
    moved = move_keypoint(text, "right wrist", 0.15, 0.1)
    moved = move_keypoint(moved, "left ear", 0.56, 0.17)  # an undetected joint placed by hand
    values = {"image": None, "pose_mode": "keypoints", "pose_photo": None, "pose_map": None}
    inputs = pose_inputs(hub, {**values, "keypoints": moved, "prompt": "a dancer"}, EditInputs())
    picture = np.asarray(inputs.control_image)  # the map the methods receive
    assert picture.shape == (backbone.size, backbone.size, 3)
    expected = [*DETECTED]
    expected[BODY_JOINTS.index("right wrist")] = (0.15, 0.1)
    expected[BODY_JOINTS.index("left ear")] = (0.56, 0.17)
    for point in expected:
        assert _lit(picture, point), point
    assert not _lit(picture, DETECTED[BODY_JOINTS.index("right wrist")])  # nothing left at the old wrist
    np.testing.assert_array_equal(picture, np.asarray(render_pose(expected, (backbone.size, backbone.size))))
    preview = np.asarray(pose_preview(expected, (64, 64), photo))  # the skeleton over the dimmed photo
    assert (preview == np.asarray(render_pose(expected, (64, 64)))).all(axis=2).mean() > 0.05


def test_pose_tab_passes_hand_face_flags_and_the_mask(backbone, photo, monkeypatch) -> None:
    hub, seen = Hub(backbone), {}
    from controlnet_aux.open_pose import BodyResult, Keypoint, PoseResult

    body = BodyResult([None if p is None else Keypoint(*p) for p in DETECTED], total_score=17.0, total_parts=17)

    def detect_poses(image, include_hand=False, include_face=False):
        seen.update(hands=include_hand, face=include_face)
        return [PoseResult(body, None, None, None)]

    monkeypatch.setattr(backbone.addon("openpose"), "detect_poses", detect_poses)
    mask = Image.new("L", (40, 40), 0)
    mask.paste(255, (10, 10, 30, 30))
    values = {
        "image": photo,
        "pose_mode": "detect from photo",
        "pose_photo": None,
        "pose_map": None,
        "keypoints": "",
        "prompt": "a dancer",
        "detect_hands": True,
        "detect_face": False,
        "mask_drawing": None,
        "mask_image": mask,
    }
    pose_inputs(hub, values, EditInputs())  # hands are drawn with matplotlib (a requirement)
    assert seen == {"hands": True, "face": False}
    values.update(detect_hands=False, detect_face=True)
    inputs = pose_inputs(hub, values, EditInputs())
    assert seen == {"hands": False, "face": True}
    assert inputs.mask is not None and inputs.mask.size == inputs.image.size
    assert np.asarray(inputs.mask).mean() == pytest.approx(255 * 0.25, abs=8)
    caption = " · ".join(inputs.captions)
    assert "face" in caption and "mask" in caption
    values.update(image=None, pose_photo=photo)  # no source photo: no mask (re-pose is then skipped)
    assert pose_inputs(hub, values, EditInputs()).mask is None


# -- The sketch tab: colour strokes, the painting, extracted lines -----------------------------------------


def test_colour_strokes_are_strokes_and_the_painting_keeps_their_colours(photo) -> None:
    canvas = Image.new("RGB", (64, 64), "white")
    canvas.paste((255, 221, 51), (8, 8, 56, 12))  # yellow: light, yet a stroke on white
    canvas.paste((31, 119, 180), (8, 40, 56, 44))
    lines = np.asarray(scribble_map(canvas, (64, 64)))
    assert lines[10, 30].min() == 255 and lines[42, 30].min() == 255 and lines[25, 30].max() == 0
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((214, 39, 40, 255), (20, 20, 40, 40))
    drawn = {"background": Image.new("RGB", (64, 64), "white"), "layers": [layer], "composite": canvas}
    painting = np.asarray(stroke_painting(drawn, None, photo, photo.size))  # over the photo: stroke editing
    scale = photo.width / 64
    inside, outside = (int(30 * scale), int(30 * scale)), (int(5 * scale), int(5 * scale))
    assert tuple(painting[inside[1], inside[0]]) == (214, 39, 40)
    assert tuple(painting[outside[1], outside[0]]) == tuple(np.asarray(photo)[outside[1], outside[0]])
    alone = np.asarray(stroke_painting(drawn, None, None, (64, 64)))  # no photo: the canvas itself
    np.testing.assert_array_equal(alone, np.asarray(canvas))


def test_extracted_lines_go_into_the_canvas_and_reach_the_methods(backbone) -> None:
    hub = Hub(backbone)
    photo = Image.new("RGB", (128, 128), (0, 0, 0))
    photo.paste((255, 255, 255), (32, 40, 96, 88))
    lines = extract_lines(backbone, photo, "canny")
    canvas = canvas_value(lines, backbone.size)  # dark lines on the white page, to draw over
    page = np.asarray(canvas["background"].convert("L"))
    np.testing.assert_array_equal(page, 255 - np.asarray(lines.convert("L")))
    values = {"sketch": canvas, "sketch_upload": None, "image": None, "prompt": "a box"}
    drawn = sketch_inputs(hub, values, EditInputs())
    np.testing.assert_array_equal(np.asarray(drawn.control_image), np.asarray(line_map(lines, "canny")))
    chosen = {"sketch_from": "lines of the source photo", "line_detector": "canny"}
    extracted = sketch_inputs(hub, {**values, **chosen, "image": photo}, EditInputs())
    np.testing.assert_array_equal(np.asarray(extracted.control_image), np.asarray(drawn.control_image))
    assert " · ".join(extracted.captions) == "lines extracted by canny"
    assert extracted[STROKES] is not None and drawn[STROKES] is not None
