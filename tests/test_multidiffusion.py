"""MultiDiffusion (region-based): one full-frame region is the plain sampler (diffusers' pipeline, bit for bit),
fusing paths that follow the same prompt is the identity, and a photo edit keeps everything outside the boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

import methods.multidiffusion as multidiffusion
from methods.core.latents import decode_latents, encode_image
from methods.core.runner import run_comparison
from methods.core.spec import Box, EditInputs
from tests.helpers import assert_same_image, direct_components, seeded_generator

SCENE = "a street with a red car and a green tree"


def plain(backbone, prompt: str, steps: int = 4, size: int = 128):
    pipe = StableDiffusionPipeline(**direct_components(backbone))
    call = {"num_inference_steps": steps, "guidance_scale": 7.5, "height": size, "width": size}
    return pipe(prompt, generator=seeded_generator(0), **call).images[0]


def run(backbone, inputs: EditInputs, **params):
    comparison = run_comparison(
        backbone, "layout", ["multidiffusion"], inputs, seed=0, params={"multidiffusion": params}
    )
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    return comparison.result("multidiffusion"), record


def test_one_full_frame_region_is_the_plain_sampler(backbone) -> None:
    """With bootstrapping on (its backgrounds never show through a full-frame mask): equal to diffusers'
    StableDiffusionPipeline with the phrase as prompt, same seed and DDIM steps."""
    inputs = EditInputs(prompt="a red car", boxes=[Box(0.0, 0.0, 1.0, 1.0, "a red car")], steps=4)
    image, record = run(backbone, inputs, bootstrap_fraction=0.5)
    assert record["info"]["bootstrapped steps"] == "2/4" and record["info"]["regions"] == 1
    assert_same_image(image, plain(backbone, "a red car"))


def test_fusing_paths_of_one_prompt_is_the_identity(backbone) -> None:
    """Overlapping boxes whose phrase is the scene prompt: every region takes the same step, and the per-pixel
    average of equal values is that value, so the result is again the plain sampler's."""
    boxes = [Box(0.1, 0.1, 0.6, 0.7, SCENE), Box(0.4, 0.3, 0.9, 0.9, SCENE)]
    image, record = run(backbone, EditInputs(prompt=SCENE, boxes=boxes, steps=4), bootstrap_fraction=0.0)
    assert record["info"]["regions"] == 3
    assert_same_image(image, plain(backbone, SCENE))
    different, _ = run(backbone, EditInputs(prompt=SCENE, boxes=[Box(0.1, 0.1, 0.6, 0.7, "a cat")], steps=4))
    assert np.abs(np.asarray(different, float) - np.asarray(image, float)).mean() > 1.0  # a region prompt acts


def test_photo_edit_keeps_the_outside_of_the_boxes(backbone, photo, monkeypatch) -> None:
    """The background region follows the photo's inversion path, so the final latent outside the box cells is the
    photo's latent exactly; after the paste-back the pixels outside the boxes are the photo's exactly."""
    decoded: list[torch.Tensor] = []

    def spy(backbone, latents):
        decoded.append(latents)
        return decode_latents(backbone, latents)

    monkeypatch.setattr(multidiffusion, "decode_latents", spy)
    boxes = [Box(0.125, 0.5, 0.5, 0.875, "a red car")]  # latent cells 2..3 x 8..13 of 16
    inputs = EditInputs(image=photo, prompt=SCENE, boxes=boxes, steps=4)
    image, record = run(backbone, inputs)
    assert record["info"]["mode"] == "edit photo" and image.size == photo.size
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[8:14, 2:8] = False
    source = encode_image(backbone, photo)
    assert torch.equal(decoded[0][..., outside], source[..., outside])
    assert not torch.equal(decoded[0][..., ~outside], source[..., ~outside])
    pixels, original = np.asarray(image), np.asarray(photo)
    keep = np.ones((128, 128), dtype=bool)
    keep[64:112, 16:64] = False
    assert np.array_equal(pixels[keep], original[keep])
    assert not np.array_equal(pixels[~keep], original[~keep])


def test_generate_at_the_photo_size_and_edit_without_photo(backbone, photo) -> None:
    boxes = [Box(0.1, 0.5, 0.5, 0.9, "a red car")]
    wide = photo.resize((192, 128))
    image, record = run(backbone, EditInputs(image=wide, prompt=SCENE, boxes=boxes, steps=2), mode="generate")
    assert image.size == (192, 128) and record["info"]["mode"] == "generate"
    comparison = run_comparison(
        backbone,
        "layout",
        ["multidiffusion"],
        EditInputs(prompt=SCENE, boxes=boxes, steps=2),
        seed=0,
        params={"multidiffusion": {"mode": "edit photo"}},
    )
    assert comparison.records[0]["status"] == "skipped"
    assert "needs a source photo" in comparison.records[0]["message"]


@pytest.mark.parametrize(
    ("box", "message"),
    [(Box(0.1, 0.1, 0.5, 0.5, " "), "has no phrase"), (Box(0.5, 0.1, 0.4, 0.5, "a car"), "0 <= x0 < x1 <= 1")],
)
def test_bad_boxes_are_sentences(backbone, box, message) -> None:
    inputs = EditInputs(prompt=SCENE, boxes=[box], steps=2)
    record = run_comparison(backbone, "layout", ["multidiffusion"], inputs, seed=0).records[0]
    assert record["status"] == "skipped" and message in record["message"]
