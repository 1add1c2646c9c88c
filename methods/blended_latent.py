"""Blended Latent Diffusion (Avrahami, Fried & Lischinski, ACM TOG / SIGGRAPH 2023).

https://arxiv.org/abs/2206.02779 — Local editing with an ordinary text-to-image latent diffusion model,
no inpainting training. The mask is downsampled to the latent grid (optionally dilated first, so thin
regions survive the 8x coarser grid). Denoising starts from noise; after every step the latent outside
the mask is replaced by the source's latent noised to the current level, so only the masked region is
generated while it keeps seeing the real background at every noise level. The final latent is decoded,
and the background can be blended back in pixel space (the VAE cannot reconstruct it exactly).

The blending loop is diffusers' ``StableDiffusionInpaintPipeline`` itself: given a 4-channel (base) UNet
it does exactly this at every step (``latents = (1 - mask) * add_noise(source, noise, t_next) + mask *
latents``), so the hub calls it over the shared base modules rather than rewriting it. One difference from
the paper's pseudo-code: diffusers noises the source with the same noise sample at every step instead of
a fresh one (both are valid forward samples).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from methods.core import masks
from methods.core.images import mask_overlay
from methods.core.masked_edit import BLD_PAPER, blended_inpaint, finish, mask_params
from methods.core.registry import register
from methods.core.slots import IMAGE, MASK, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import (
    Condition,
    EditInputs,
    Method,
    MethodOutput,
    RunContext,
    Strategy,
)


def latent_grid_picture(image: Image.Image, mask: Image.Image, factor: int) -> Image.Image:
    """The source with the mask as the latents see it (nearest-downsampled by ``factor``) in red."""
    grid = masks.latent_mask(mask, (image.height // factor, image.width // factor))[0, 0].numpy() > 0.5
    return mask_overlay(image, masks.from_bool(grid).resize(image.size, Image.Resampling.NEAREST))


@register
class BlendedLatentDiffusion(Method):
    name = "blended_latent"
    label = "Blended Latent Diffusion"
    condition = Condition.MASK
    strategy = Strategy.TRAINING_FREE
    paper = BLD_PAPER
    summary = "The base model generates inside the mask; outside, the noised source latent is blended in each step."
    params = mask_params(8.0)  # always from pure noise, as in the paper (from the noised source: masked SDEdit)
    requires = (IMAGE, MASK, PROMPT)
    optional = (NEGATIVE_PROMPT,)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        mask = masks.dilate(masks.check_mask(inputs.mask, inputs.image.size), params["dilate"])
        result = blended_inpaint(ctx, inputs, inputs.image, mask, 1.0)
        picture = latent_grid_picture(inputs.image, mask, ctx.backbone.vae_scale_factor)
        return MethodOutput(
            finish(inputs, result, mask, params),
            extras=[(picture, "the mask on the latent grid (red), after dilation")],
        )
