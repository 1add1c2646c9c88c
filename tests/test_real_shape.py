"""The tiny backbone has SD 1.5's shape: the same UNet topology and attention layer names, size multiple 64 and the
real CLIP token ids, so the branches written for the real model (LEDITS++'s 1/4-resolution attention masks,
P2P's maps at 1/4 of the latent, Plug-and-Play's up_blocks[1] features, MasaCtrl's layer 10 of 16) run in CI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel
from PIL import Image

from methods.core.attention import attention_sites
from methods.core.examples import example_inputs
from methods.core.fullsize import unet_config
from methods.core.images import fit_image
from methods.core.runner import run_comparison
from methods.ledits_pp import has_quarter_resolution_attention
from methods.masactrl import MutualSelfAttention
from methods.prompt_to_prompt import PromptToPrompt, plan
from tests.conftest import make_photo


@pytest.fixture(scope="module")
def sd15_unet() -> UNet2DConditionModel:
    with init_empty_weights():
        return UNet2DConditionModel.from_config(unet_config())  # SD 1.5's unet/config.json


def test_the_tiny_unet_has_sd15_topology(backbone, sd15_unet) -> None:
    tiny = backbone.unet
    for key in ("layers_per_block", "down_block_types", "up_block_types", "attention_head_dim"):
        assert tuple(np.atleast_1d(tiny.config[key])) == tuple(np.atleast_1d(sd15_unet.config[key])), key
    assert list(tiny.attn_processors) == list(sd15_unet.attn_processors)  # same names, same order
    sites = attention_sites(tiny).values()
    assert sum(not s.is_cross for s in sites) == sum(s.is_cross for s in sites) == 16
    assert backbone.size_multiple == 64 and backbone.size % 64 == 0


def test_the_tiny_tokenizer_has_the_real_clip_ids(backbone) -> None:
    tokenizer = backbone.tokenizer
    assert len(tokenizer) == 49408 and tokenizer.eos_token_id == 49407 and tokenizer.bos_token_id == 49406
    # Ids of the real openai/clip-vit-large-patch14 vocabulary (one token per common word).
    assert tokenizer("a photo of a cat", add_special_tokens=False).input_ids == [320, 1125, 539, 320, 2368]
    assert tokenizer.tokenize("watercolor") == ["watercolor</w>"]


def test_every_pipeline_accepts_a_non_square_photo(backbone) -> None:
    """A 600x400 photo: the working size fits the UNet's four levels (LEDITS++ wants multiples of 32)."""
    photo = fit_image(make_photo(600).resize((600, 400)), backbone.size, backbone.size_multiple)
    assert photo.width % 64 == 0 and photo.height % 64 == 0 and photo.size != (backbone.size, backbone.size)
    inputs = example_inputs("text", backbone, steps=2)
    inputs.image = photo
    comparison = run_comparison(backbone, "text", ["ledits_pp", "sdedit"], inputs, seed=0)
    for record in comparison.records:
        assert record["status"] == "ok", record
    assert comparison.result("ledits_pp").size == photo.size
    # The default implicit mask (cross-attention at 1/4 latent resolution + noise) ran, not the noise-only fallback.
    assert has_quarter_resolution_attention(backbone.unet)
    assert "noise only" not in str(comparison.records[0]["info"])


def test_prompt_to_prompt_reads_maps_at_a_quarter_of_the_latent(backbone) -> None:
    from methods.core.branches import edit_photo
    from methods.core.spec import RunContext

    inputs = example_inputs("text", backbone, steps=2)
    inputs.source_prompt, inputs.prompt = "a house on a meadow", "a castle on a meadow"
    values = PromptToPrompt.resolve_params({"edit_mode": "replace", "blend_words": "house, castle"})
    controller, blend = plan(backbone.tokenizer, inputs, values)
    ctx = RunContext(backbone=backbone, seed=0, generator=torch.Generator().manual_seed(0))
    edit_photo(ctx, inputs.image, inputs.source_prompt, inputs.prompt, 2, 7.5, controller, step_hook=blend)
    latent = (inputs.image.height // 8) * (inputs.image.width // 8)
    # Cross-attention at 1/1, 1/2, 1/4 of the latent and the mid block's at 1/8; the blend reads the 1/4 maps, as
    # P2P's 16x16 for 64x64 latents.
    assert sorted(controller.maps) == [latent // 64, latent // 16, latent // 4, latent]
    assert blend.mask is not None and blend.mask.shape[-2:] == (inputs.image.height // 8, inputs.image.width // 8)


def test_masactrl_starts_at_layer_10_of_16_and_pnp_injects_at_a_quarter(backbone) -> None:
    controller = MutualSelfAttention(4, 0.5, 10)
    sites = sorted({s.index: s for s in attention_sites(backbone.unet).values()}.values(), key=lambda s: s.index)
    assert [controller.first_layer(s) for s in sites] == [10] * 16  # no proportional mapping needed any more
    assert [s.place for s in sites if s.index >= 10] == ["up"] * 6  # the decoder's last six, as in the paper

    block = backbone.unet.up_blocks[1].resnets[1].conv2
    shapes: list[tuple[int, ...]] = []
    handle = block.register_forward_hook(lambda module, args, output: shapes.append(tuple(output.shape)))
    try:
        inputs = example_inputs("text", backbone, steps=2)
        record = run_comparison(backbone, "text", ["plug_and_play"], inputs, seed=0).records[0]
    finally:
        handle.remove()
    assert record["status"] == "ok", record
    latent = (inputs.image.height // 8, inputs.image.width // 8)
    assert shapes and all(s[-2:] == (latent[0] // 4, latent[1] // 4) for s in shapes)


def test_a_photo_smaller_than_the_multiple_still_gets_a_valid_size(backbone) -> None:
    tiny_photo = Image.new("RGB", (40, 30), (200, 100, 50))
    fitted = fit_image(tiny_photo, backbone.size, backbone.size_multiple)
    assert fitted.width % 64 == 0 and fitted.height % 64 == 0
