"""Multi-ControlNet (segmentation + pose): equals diffusers' ControlNet pipelines given a list of ControlNets,
reduces exactly to ControlNet Segmentation when the pose weight is 0, and needs the second map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionControlNetImg2ImgPipeline, StableDiffusionControlNetPipeline

from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from methods.core.slots import SECOND_POSE
from tests.helpers import assert_same_image, direct_components, seeded_generator

SEED = 7
SCALES = {"seg_scale": 0.8, "pose_scale": 0.6}


def _generator() -> torch.Generator:
    return seeded_generator(SEED)


def _multi(backbone, inputs, **params):
    return run_comparison(
        backbone, "segmentation", ["multi_controlnet"], inputs, SEED, params={"multi_controlnet": params}
    ).result("multi_controlnet")


def _nets(backbone) -> list:
    return [backbone.addon("controlnet_seg"), backbone.addon("controlnet_openpose")]


def test_multi_controlnet_img2img_equals_pipeline_with_a_list_of_controlnets(backbone) -> None:
    inputs = example_inputs("segmentation", backbone)
    hub = _multi(backbone, inputs, strength=0.9, **SCALES)
    pipe = StableDiffusionControlNetImg2ImgPipeline(**direct_components(backbone, controlnet=_nets(backbone)))
    width, height = inputs.image.size
    direct = pipe(
        prompt=inputs.prompt,
        image=inputs.image,
        control_image=[inputs.control_image, inputs[SECOND_POSE]],
        strength=0.9,
        controlnet_conditioning_scale=[0.8, 0.6],
        height=height,
        width=width,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    assert_same_image(hub, direct)


def test_multi_controlnet_generation_equals_pipeline(backbone) -> None:
    inputs = example_inputs("segmentation", backbone)
    inputs.image = None
    hub = _multi(backbone, inputs, **SCALES)
    pipe = StableDiffusionControlNetPipeline(**direct_components(backbone, controlnet=_nets(backbone)))
    width, height = inputs.control_image.size
    direct = pipe(
        prompt=inputs.prompt,
        image=[inputs.control_image, inputs[SECOND_POSE]],
        controlnet_conditioning_scale=[0.8, 0.6],
        height=height,
        width=width,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    assert_same_image(hub, direct)


@pytest.mark.parametrize("with_photo", [True, False])
def test_pose_weight_zero_equals_controlnet_seg_alone(backbone, with_photo: bool) -> None:
    inputs = example_inputs("segmentation", backbone)
    if not with_photo:
        inputs.image = None
    multi = _multi(backbone, inputs, seg_scale=0.8, pose_scale=0.0, strength=0.9)
    single = run_comparison(
        backbone,
        "segmentation",
        ["controlnet_seg"],
        inputs,
        SEED,
        params={"controlnet_seg": {"conditioning_scale": 0.8, "strength": 0.9}},
    ).result("controlnet_seg")
    assert_same_image(multi, single)
    posed = np.asarray(_multi(backbone, inputs, seg_scale=0.8, pose_scale=1.0, strength=0.9), dtype=np.int16)
    change = np.abs(posed - np.asarray(single, dtype=np.int16)).mean()
    assert change > 1.0, f"the pose map changed the image by only {change:.2f} grey levels on average"


def test_without_a_pose_map_the_cell_is_skipped_with_a_reason(backbone) -> None:
    inputs = example_inputs("segmentation", backbone)
    inputs[SECOND_POSE] = None
    record = run_comparison(backbone, "segmentation", ["multi_controlnet"], inputs, SEED).records[0]
    assert record["status"] == "skipped"
    assert "pose map as the second condition" in record["message"]
