"""GLIGEN through the hub equals diffusers' GLIGEN pipeline, grounds on boxes, and edits only inside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionGLIGENPipeline, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.attention import GatedSelfAttentionDense
from PIL import Image

import methods.gligen  # noqa: F401  (registers the method)
from methods.core import tiny
from methods.core.backbone import Backbone
from methods.core.runner import run_comparison
from methods.core.settings import Settings
from methods.core.spec import Box, EditInputs
from methods.gligen import EDIT, GENERATE, fusers_kept

SEED, STEPS, PROMPT = 0, 3, "a house on a meadow"
BOXES = [Box(0.25, 0.25, 0.75, 0.75, "a red car")]


def build_text_box_unet(folder: Path, in_channels: int) -> None:
    """A tiny *text-box* GLIGEN UNet (attention_type "gated", as the masterful/gligen-1-4-* checkpoints).

    The gates (alpha) are opened: at their initial value 0 the grounding layers would have no effect.
    """
    unet = tiny.tiny_unet(in_channels=in_channels, attention_type="gated")
    with torch.no_grad():
        for module in unet.modules():
            if type(module) is GatedSelfAttentionDense:
                module.alpha_attn.fill_(1.0)
                module.alpha_dense.fill_(1.0)
    unet.save_pretrained(folder / "unet")


@pytest.fixture(scope="module")
def gligen_backbone(backbone: Backbone, tmp_path_factory: pytest.TempPathFactory) -> Backbone:
    """The shared backbone if its tiny GLIGEN add-ons are text-box UNets, else one with such add-ons."""
    config = UNet2DConditionModel.load_config(backbone.addon_location("gligen_unet"), subfolder="unet")
    if config.get("attention_type") == "gated":
        return backbone
    root = tmp_path_factory.mktemp("gligen")
    build_text_box_unet(root / "generation", 4)
    build_text_box_unet(root / "inpainting", 9)
    overrides = {"gligen_unet": str(root / "generation"), "gligen_inpaint_unet": str(root / "inpainting")}
    settings = Settings(backbone="tiny", cache_dir=backbone.settings.cache_dir, device="cpu", addon_overrides=overrides)
    return Backbone(settings)


def hub(backbone: Backbone, inputs: EditInputs, **params: object) -> tuple[np.ndarray, dict]:
    comparison = run_comparison(backbone, "layout", ["gligen"], inputs, seed=SEED, params={"gligen": params})
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    return np.asarray(comparison.result("gligen")), record


def direct(backbone: Backbone, unet: object, inputs: EditInputs, beta: float, edit: bool, **kw: object) -> object:
    """The same call written against diffusers alone (runner's seeding: global RNG and a CPU generator)."""
    pipe = StableDiffusionGLIGENPipeline(
        vae=backbone.vae,
        text_encoder=backbone.text_encoder,
        tokenizer=backbone.tokenizer,
        unet=unet,
        scheduler=DDIMScheduler.from_config(backbone.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(SEED)
    with fusers_kept(unet):
        return pipe(
            prompt=inputs.prompt,
            gligen_phrases=[b.phrase for b in inputs.boxes],
            gligen_boxes=[b.as_list() for b in inputs.boxes],
            gligen_inpaint_image=inputs.image if edit else None,
            gligen_scheduled_sampling_beta=beta,
            num_inference_steps=inputs.steps,
            guidance_scale=inputs.guidance,
            generator=torch.Generator("cpu").manual_seed(SEED),
            **kw,
        ).images[0]


@pytest.mark.parametrize("mode", [GENERATE, EDIT])
def test_equals_diffusers_and_leaves_state(gligen_backbone: Backbone, photo: Image.Image, mode: str) -> None:
    edit = mode == EDIT
    unet = gligen_backbone.addon("gligen_inpaint_unet" if edit else "gligen_unet")
    gates = [m for m in unet.modules() if type(m) is GatedSelfAttentionDense]
    processors = dict(unet.attn_processors)
    before = gligen_backbone.state_fingerprint()
    inputs = EditInputs(image=photo, prompt=PROMPT, boxes=BOXES, steps=STEPS)
    # beta 0.5 of 3 steps: grounded for 1 step, then the pipeline switches the fusers off.
    ours, record = hub(gligen_backbone, inputs, mode=mode, gligen_scheduled_sampling_beta=0.5)
    assert record["info"]["grounded steps"] == "1/3"
    assert all(m.enabled for m in gates), "the fusers must be switched back on after scheduled sampling"
    assert dict(unet.attn_processors) == processors
    assert all(unet.attn_processors[k] is v for k, v in processors.items())
    assert gligen_backbone.state_fingerprint() == before
    reference = np.asarray(direct(gligen_backbone, unet, inputs, 0.5, edit))
    assert ours.shape == reference.shape == (128, 128, 3)
    assert np.array_equal(ours, reference)


def test_grounding_layers_and_boxes_matter(gligen_backbone: Backbone, photo: Image.Image) -> None:
    inputs = EditInputs(prompt=PROMPT, boxes=BOXES, steps=STEPS)
    grounded, _ = hub(gligen_backbone, inputs, gligen_scheduled_sampling_beta=1.0)
    ungrounded, record = hub(gligen_backbone, inputs, gligen_scheduled_sampling_beta=0.0)
    assert record["info"]["grounded steps"] == "0/3"
    # measured on the tiny backbone: max 41, mean 3.07 (0..255)
    assert np.abs(grounded.astype(int) - ungrounded).mean() > 1.0
    moved = EditInputs(prompt=PROMPT, boxes=[Box(0.0, 0.5, 0.4, 1.0, "a red car")], steps=STEPS)
    elsewhere, _ = hub(gligen_backbone, moved, gligen_scheduled_sampling_beta=1.0)
    # random weights ground weakly: moving the box changes pixels by at most 1 here, latents by more
    assert not np.array_equal(grounded, elsewhere)
    unet = gligen_backbone.addon("gligen_unet")
    latent_a = direct(gligen_backbone, unet, inputs, 1.0, False, output_type="latent")
    latent_b = direct(gligen_backbone, unet, moved, 1.0, False, output_type="latent")
    assert (latent_a - latent_b).abs().max() > 1e-3


def test_edit_keeps_outside_the_boxes(gligen_backbone: Backbone, photo: Image.Image) -> None:
    inputs = EditInputs(image=photo, prompt=PROMPT, boxes=BOXES, steps=STEPS)
    edited, _ = hub(gligen_backbone, inputs, mode=EDIT, gligen_scheduled_sampling_beta=1.0)
    vae, processor = gligen_backbone.vae, VaeImageProcessor(vae_scale_factor=gligen_backbone.vae_scale_factor)
    with torch.no_grad():
        torch.manual_seed(SEED)  # the pipeline's first global draw is the VAE posterior sample of the source
        source_latent = vae.encode(processor.preprocess(photo)).latent_dist.sample() * vae.config.scaling_factor
        round_trip = processor.postprocess(vae.decode(source_latent / vae.config.scaling_factor).sample)[0]
    # latent space, where GLIGEN inpainting acts: box (0.25..0.75) = latent cells 4..11 of 16
    latent = direct(
        gligen_backbone, gligen_backbone.addon("gligen_inpaint_unet"), inputs, 1.0, True, output_type="latent"
    )
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[4:12, 4:12] = False
    change = (latent - source_latent).abs()[0]
    # measured: outside max 0.126 (last DDIM step from t=1), inside mean 2.74
    assert change[:, outside].max() < 0.2
    assert change[:, outside].max() < 0.1 * change[:, ~outside].mean()
    # pixel space: the tiny VAE decoder mixes globally (GroupNorm, mid-block attention), so compare outside a
    # 16 px margin; measured mean |edit - round trip| 19.6 outside vs 57.2 inside the box
    diff = np.abs(edited.astype(int) - np.asarray(round_trip).astype(int))
    far = np.ones((128, 128), dtype=bool)
    far[16:112, 16:112] = False
    inside = np.zeros((128, 128), dtype=bool)
    inside[32:96, 32:96] = True
    assert diff[far].mean() < 0.5 * diff[inside].mean()
    source = np.asarray(photo).astype(int)
    edit_error = np.abs(edited.astype(int) - source)[far].mean()
    round_trip_error = np.abs(np.asarray(round_trip).astype(int) - source)[far].mean()
    # outside, the edit is as far from the source as the VAE round trip itself (both about 61 on tiny weights)
    assert abs(edit_error - round_trip_error) < 5


@pytest.mark.parametrize("mode", [GENERATE, EDIT])
def test_output_has_the_source_size(gligen_backbone: Backbone, photo: Image.Image, mode: str) -> None:
    wide = photo.resize((128, 96))
    image, record = hub(gligen_backbone, EditInputs(image=wide, prompt=PROMPT, boxes=BOXES, steps=2), mode=mode)
    assert image.shape == (96, 128, 3)
    assert ("resolution" in record["info"]) == (mode == EDIT)


@pytest.mark.parametrize(
    ("inputs", "params", "message"),
    [
        (EditInputs(prompt=PROMPT, steps=2), {}, "needs at least one box with a phrase"),
        (EditInputs(prompt=PROMPT, boxes=BOXES, steps=2), {"mode": EDIT}, "edit mode needs a source image"),
        (EditInputs(boxes=[Box(0.1, 0.1, 0.5, 0.5, " ")], steps=2), {}, "Box 1 has no phrase"),
        (EditInputs(boxes=[Box(0.5, 0.1, 0.2, 0.5, "a dog")], steps=2), {}, "0 <= x0 < x1 <= 1"),
    ],
)
def test_missing_or_bad_inputs_are_skipped(
    gligen_backbone: Backbone, inputs: EditInputs, params: dict, message: str
) -> None:
    comparison = run_comparison(gligen_backbone, "layout", ["gligen"], inputs, seed=SEED, params={"gligen": params})
    record = comparison.records[0]
    assert record["status"] == "skipped"
    assert message in record["message"]
