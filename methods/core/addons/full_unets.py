"""Full builders for ``unets``: the replacement UNets at SD 1.5's real config and DiT-XL/2-256, seeded random
weights (``methods.core.fullsize``), in the layouts of their real repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from methods.core.fullsize import Writer, unet_config


def _unet(writer: Writer, seed: int, **overrides: Any) -> Any:
    from diffusers import UNet2DConditionModel

    return writer.build(lambda: UNet2DConditionModel.from_config(unet_config(**overrides)), seed)


def build_inpaint_unet(folder: Path, writer: Writer) -> None:
    """stable-diffusion-v1-5/stable-diffusion-inpainting's unet: 9 input channels (latent, mask, masked latent)."""
    writer.save_model(_unet(writer, 9, in_channels=9), folder / "unet")


def _gligen_unet(writer: Writer, in_channels: int, seed: int) -> Any:
    """SD 1.4's UNet with GLIGEN's gated self-attention ("gated": the text-box checkpoints). Its gates come out open,
    as trained ones are (``Writer.build`` draws every scalar parameter as 1; fresh ones start at tanh(0) = 0 and
    would make the grounding layers do nothing)."""
    return _unet(writer, seed, in_channels=in_channels, attention_type="gated")


def build_gligen_unet(folder: Path, writer: Writer) -> None:
    """masterful/gligen-1-4-generation-text-box's unet."""
    writer.save_model(_gligen_unet(writer, 4, 14), folder / "unet")


def build_gligen_inpaint_unet(folder: Path, writer: Writer) -> None:
    """masterful/gligen-1-4-inpainting-text-box's unet (9 input channels)."""
    writer.save_model(_gligen_unet(writer, 9, 19), folder / "unet")


def dit_config() -> dict[str, Any]:
    """facebook/DiT-XL-2-256's transformer/config.json: 28 layers, 16 heads of 72, patch 2 on 32x32 latents,
    4 channels in and 8 out (noise + variance), ImageNet's 1000 classes through adaLN-Zero."""
    return {
        "num_attention_heads": 16,
        "attention_head_dim": 72,
        "in_channels": 4,
        "out_channels": 8,
        "num_layers": 28,
        "sample_size": 32,
        "patch_size": 2,
        "num_embeds_ada_norm": 1000,
        "norm_type": "ada_norm_zero",
        "norm_elementwise_affine": False,
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
    }


def dit_scheduler_config() -> dict[str, Any]:
    """facebook/DiT-XL-2-256's scheduler/scheduler_config.json (DDIM over DiT's linear betas)."""
    return {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "clip_sample": False}


def build_dit(folder: Path, writer: Writer) -> None:
    """facebook/DiT-XL-2-256's transformer and scheduler folders (its VAE is not an add-on: DiT decodes with the
    backbone's)."""
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    transformer = writer.build(lambda: DiTTransformer2DModel.from_config(dit_config()), 400)
    writer.save_model(transformer, folder / "transformer")
    DDIMScheduler.from_config(dit_scheduler_config()).save_pretrained(folder / "scheduler")


def build_instruct_pix2pix_unet(folder: Path, writer: Writer) -> None:
    """timbrooks/instruct-pix2pix's unet: 8 input channels (noisy latent + photo latent)."""
    writer.save_model(_unet(writer, 8, in_channels=8), folder / "unet")


def build_paint_by_example_unet(folder: Path, writer: Writer) -> None:
    """Fantasy-Studio/Paint-by-Example's unet: 9 input channels, context of 768 (the exemplar's embedding)."""
    writer.save_model(_unet(writer, 700, in_channels=9, cross_attention_dim=768), folder / "unet")
