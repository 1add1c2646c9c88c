"""What the masked methods share: the mask parameters (grow, paste back, feather), the pixel paste-back, and
Blended Latent Diffusion's step (Avrahami et al., 2023) as one inpainting call over the *base* UNet, which the
mask methods, outpainting and masked SDEdit all build on."""

from __future__ import annotations

from typing import Any

from diffusers import StableDiffusionInpaintPipeline
from PIL import Image

from methods.core import masks
from methods.core.denoise import denoise
from methods.core.spec import BoolParam, EditInputs, FloatParam, Paper, Param, RunContext

BLD_PAPER = Paper("Blended Latent Diffusion", 2023, "https://arxiv.org/abs/2206.02779")


def mask_params(dilate: float) -> tuple[Param, ...]:
    """The mask handling every masked method shares: grow the mask, paste the background back, feather."""
    return (
        FloatParam(
            "dilate",
            dilate,
            0.0,
            64.0,
            step=1.0,
            label="dilate (px)",
            help="Grow the mask by this many pixels before it is downsampled 8x to the latent grid.",
        ),
        BoolParam("keep_background", True, help="Paste the source back outside the (dilated) mask, in pixels."),
        FloatParam(
            "feather",
            4.0,
            0.0,
            32.0,
            step=1.0,
            label="feather (px)",
            help="Soft seam of the paste-back, inside the mask; outside it the source is kept exactly.",
        ),
    )


def blended_inpaint(
    ctx: RunContext, inputs: EditInputs, image: Image.Image, mask: Image.Image, strength: float
) -> Image.Image:
    """One call of diffusers' inpainting pipeline with the *base* UNet: given a 4-channel UNet it blends, after
    every step, the source latent noised to the current level in outside ``mask`` (Blended Latent Diffusion)."""
    pipe = ctx.backbone.pipeline(StableDiffusionInpaintPipeline)  # the shared 4-channel UNet
    return denoise(pipe, ctx, inputs, strength=strength, size=image.size, image=image, mask_image=mask)


def finish(inputs: EditInputs, result: Image.Image, mask: Image.Image, params: dict[str, Any]) -> Image.Image:
    """The optional pixel paste-back of the background, shared by the masked methods."""
    if not params["keep_background"]:
        return result
    return masks.paste_back(inputs.image, result, mask, params["feather"])
