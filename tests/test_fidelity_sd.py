"""Fidelity of the methods that are diffusers pipelines: the hub's result equals a direct diffusers call
(pipeline built by hand over the same modules, same seed), and masked results keep the unmasked pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    ControlNetModel,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
)

from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from tests.helpers import assert_same_image, direct_components, seeded_generator

SEED = 7


def _generator() -> torch.Generator:
    return seeded_generator(SEED)


def test_sdedit_equals_img2img_pipeline(backbone) -> None:
    inputs = example_inputs("text", backbone)
    hub = run_comparison(backbone, "text", ["sdedit"], inputs, SEED, params={"sdedit": {"strength": 0.7}})
    pipe = StableDiffusionImg2ImgPipeline(**direct_components(backbone))
    direct = pipe(
        prompt=inputs.prompt,
        image=inputs.image,
        strength=0.7,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    assert_same_image(hub.result("sdedit"), direct)


def test_sdedit_strength_matters(backbone) -> None:
    inputs = example_inputs("text", backbone)
    low = run_comparison(backbone, "text", ["sdedit"], inputs, SEED, params={"sdedit": {"strength": 0.3}})
    high = run_comparison(backbone, "text", ["sdedit"], inputs, SEED, params={"sdedit": {"strength": 0.9}})
    assert not np.array_equal(np.asarray(low.result("sdedit")), np.asarray(high.result("sdedit")))


def _inpaint_direct(backbone, inputs) -> object:
    unet = backbone.addon("inpaint_unet")
    pipe = StableDiffusionInpaintPipeline(**direct_components(backbone, unet=unet))
    width, height = inputs.image.size
    return pipe(
        prompt=inputs.prompt,
        image=inputs.image,
        mask_image=inputs.mask,
        height=height,
        width=width,
        strength=1.0,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]


def test_inpainting_equals_inpaint_pipeline(backbone) -> None:
    inputs = example_inputs("mask", backbone)
    hub = run_comparison(
        backbone, "mask", ["sd_inpaint"], inputs, SEED, params={"sd_inpaint": {"keep_unmasked": False}}
    )
    assert_same_image(hub.result("sd_inpaint"), _inpaint_direct(backbone, inputs))


def test_inpainting_keeps_pixels_outside_the_mask(backbone) -> None:
    inputs = example_inputs("mask", backbone)
    hub = run_comparison(backbone, "mask", ["sd_inpaint"], inputs, SEED)
    out, src = np.asarray(hub.result("sd_inpaint")), np.asarray(inputs.image)
    outside = np.asarray(inputs.mask) == 0
    assert outside.mean() > 0.5
    np.testing.assert_array_equal(out[outside], src[outside])  # exactly kept (pasted back)
    inside = ~outside
    raw = np.asarray(_inpaint_direct(backbone, inputs))
    np.testing.assert_array_equal(out[inside], raw[inside])  # the model's own pixels inside


CONTROLNETS = [("controlnet_openpose", "pose"), ("controlnet_scribble", "sketch"), ("controlnet_seg", "segmentation")]


@pytest.mark.parametrize(("name", "condition"), CONTROLNETS)
def test_controlnet_equals_pipeline(backbone, name: str, condition: str) -> None:
    inputs = example_inputs(condition, backbone)
    params = {"conditioning_scale": 0.8, "control_start": 0.0, "control_end": 1.0, "strength": 0.9}
    hub = run_comparison(backbone, condition, [name], inputs, SEED, params={name: params})
    controlnet = backbone.addon(name)
    assert isinstance(controlnet, ControlNetModel)
    pipe = StableDiffusionControlNetImg2ImgPipeline(**direct_components(backbone, controlnet=controlnet))
    width, height = inputs.image.size
    direct = pipe(
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


@pytest.mark.parametrize(("name", "condition"), CONTROLNETS)
def test_controlnet_generation_equals_pipeline_and_control_matters(backbone, name: str, condition: str) -> None:
    inputs = example_inputs(condition, backbone)
    inputs.image = None
    hub = run_comparison(backbone, condition, [name], inputs, SEED)
    pipe = StableDiffusionControlNetPipeline(**direct_components(backbone, controlnet=backbone.addon(name)))
    width, height = inputs.control_image.size  # without a photo, the condition map sets the size
    direct = pipe(
        prompt=inputs.prompt,
        image=inputs.control_image,
        height=height,
        width=width,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    assert_same_image(hub.result(name), direct)
    off = run_comparison(backbone, condition, [name], inputs, SEED, params={name: {"conditioning_scale": 0.0}})
    assert not np.array_equal(np.asarray(off.result(name)), np.asarray(hub.result(name)))
