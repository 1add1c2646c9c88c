"""Tiny builders for ``unets``: the replacement UNets at the tiny base's config, and a tiny DiT."""

from __future__ import annotations

from pathlib import Path

import torch

from methods.core.tiny import _UNET_BLOCKS, TINY_SIZE, _seeded, tiny_unet


def build_inpaint_unet(folder: Path) -> None:
    tiny_unet(in_channels=9).save_pretrained(folder / "unet")


def _gligen_unet(in_channels: int):
    from diffusers.models.attention import GatedSelfAttentionDense

    # The text-box checkpoints (masterful/gligen-1-4-*-text-box) use "gated"; "gated-text-image" belongs to
    # another pipeline. Trained gates are open; fresh ones start at tanh(0) = 0, so open them here, or the
    # random grounding layers would have no effect at all.
    unet = tiny_unet(in_channels=in_channels, attention_type="gated")
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, GatedSelfAttentionDense):
                module.alpha_attn.fill_(1.0)
                module.alpha_dense.fill_(1.0)
    return unet


def build_gligen_unet(folder: Path) -> None:
    _gligen_unet(4).save_pretrained(folder / "unet")


def build_gligen_inpaint_unet(folder: Path) -> None:
    _gligen_unet(9).save_pretrained(folder / "unet")


def build_dit(folder: Path) -> None:
    """Class-conditional DiT (ImageNet's 1000 classes) in the layout of facebook/DiT-XL-2-256."""
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    _seeded(400)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        sample_size=TINY_SIZE // 8,
        patch_size=2,
        num_embeds_ada_norm=1000,
    )
    transformer.save_pretrained(folder / "transformer")
    DDIMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False).save_pretrained(
        folder / "scheduler"
    )


def build_instruct_pix2pix_unet(folder: Path) -> None:
    """InstructPix2Pix's UNet: 8 input channels (noisy latent + source latent), as in timbrooks/instruct-pix2pix."""
    tiny_unet(in_channels=8).save_pretrained(folder / "unet")


def build_paint_by_example_unet(folder: Path) -> None:
    """Paint-by-Example's 9-channel UNet (latents + masked-image latents + mask), layout of its "unet" folder."""
    from diffusers import UNet2DConditionModel

    _seeded(700)  # its own seed: not a copy of the SD inpainting UNet (tiny_unet seeds by channel count)
    unet = UNet2DConditionModel(sample_size=TINY_SIZE // 8, in_channels=9, out_channels=4, **_UNET_BLOCKS)
    unet.save_pretrained(folder / "unet")
