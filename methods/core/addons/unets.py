"""UNets that replace the base one (inpainting, InstructPix2Pix, Paint-by-Example, GLIGEN) and DiT."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from methods.core.addons import AddonSpec, frozen_model

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "methods.core.addons.tiny_unets"

_unet = frozen_model("diffusers.UNet2DConditionModel")


def _dit(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    from methods.core.loading import load_model

    transformer = load_model(
        DiTTransformer2DModel, location, variant=backbone.variant(spec), subfolder="transformer", dtype=backbone.dtype
    )
    scheduler = DDIMScheduler.from_pretrained(location, subfolder="scheduler")
    return transformer.to(backbone.device).eval().requires_grad_(False), scheduler


SPECS = (
    AddonSpec(
        "inpaint_unet",
        "SD 1.5 inpainting UNet (9 input channels)",
        "stable-diffusion-v1-5/stable-diffusion-inpainting",
        _unet,
        f"{_TINY}:build_inpaint_unet",
        build_full="methods.core.addons.full_unets:build_inpaint_unet",
        subfolder="unet",
        variant="fp16",
    ),
    AddonSpec(
        "gligen_unet",
        "GLIGEN text-box generation UNet (SD 1.4 + gated attention)",
        "masterful/gligen-1-4-generation-text-box",
        _unet,
        f"{_TINY}:build_gligen_unet",
        build_full="methods.core.addons.full_unets:build_gligen_unet",
        subfolder="unet",
    ),
    AddonSpec(
        "gligen_inpaint_unet",
        "GLIGEN text-box inpainting UNet",
        "masterful/gligen-1-4-inpainting-text-box",
        _unet,
        f"{_TINY}:build_gligen_inpaint_unet",
        build_full="methods.core.addons.full_unets:build_gligen_inpaint_unet",
        subfolder="unet",
    ),
    AddonSpec(
        "dit",
        "DiT-XL/2 class-conditional transformer (ImageNet 256)",
        "facebook/DiT-XL-2-256",
        _dit,
        f"{_TINY}:build_dit",
        build_full="methods.core.addons.full_unets:build_dit",
        files=("transformer/", "scheduler/"),
        licence="CC BY-NC 4.0 (non-commercial; facebook/DiT-XL-2-256)",
    ),
    AddonSpec(
        "instruct_pix2pix_unet",
        "InstructPix2Pix UNet (8 input channels: noisy latent + photo latent)",
        "timbrooks/instruct-pix2pix",
        _unet,
        f"{_TINY}:build_instruct_pix2pix_unet",
        build_full="methods.core.addons.full_unets:build_instruct_pix2pix_unet",
        subfolder="unet",
    ),
    AddonSpec(
        "paint_by_example_unet",
        "Paint-by-Example UNet (9 input channels, conditioned on an exemplar image)",
        "Fantasy-Studio/Paint-by-Example",
        _unet,
        f"{_TINY}:build_paint_by_example_unet",
        build_full="methods.core.addons.full_unets:build_paint_by_example_unet",
        subfolder="unet",
    ),
)
