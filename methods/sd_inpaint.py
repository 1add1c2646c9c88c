"""Stable Diffusion Inpainting (Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion
Models", CVPR 2022; the SD 1.5 inpainting checkpoint by RunwayML).

https://arxiv.org/abs/2112.10752 — A UNet fine-tuned with five extra input channels (the masked image's
latent and the downsampled mask) fills the masked region from the prompt, conditioned on the visible
context. The hub swaps the inpainting UNet (an add-on) into diffusers' ``StableDiffusionInpaintPipeline``
over the shared VAE and text encoder. The 9-channel model does not blend latents outside the mask, so by
default the unmasked pixels are pasted back from the source (diffusers' ``apply_overlay``, the usual
inpainting post-process); turn ``keep_unmasked`` off to see the raw model output.
"""

from __future__ import annotations

from typing import Any

from diffusers import StableDiffusionInpaintPipeline

from methods.core.denoise import denoise
from methods.core.registry import register
from methods.core.slots import IMAGE, MASK, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import (
    BoolParam,
    Condition,
    EditInputs,
    FloatParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)


@register
class StableDiffusionInpainting(Method):
    name = "sd_inpaint"
    label = "SD Inpainting"
    condition = Condition.MASK
    strategy = Strategy.TRAINING_BASED
    paper = Paper(
        "High-Resolution Image Synthesis with Latent Diffusion Models (SD inpainting)",
        2022,
        "https://arxiv.org/abs/2112.10752",
    )
    summary = "A UNet trained for inpainting fills the masked region from the prompt."
    params = (
        FloatParam("strength", 1.0, 0.05, 1.0, help="1.0 repaints the masked region from pure noise."),
        BoolParam("keep_unmasked", True, help="Paste the source back outside the mask (apply_overlay)."),
    )
    addons = ("inpaint_unet",)
    requires = (IMAGE, MASK, PROMPT)
    optional = (NEGATIVE_PROMPT,)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        pipe = ctx.backbone.pipeline(StableDiffusionInpaintPipeline, unet=ctx.backbone.addon("inpaint_unet"))
        image = denoise(
            pipe,
            ctx,
            inputs,
            strength=params["strength"],
            size=inputs.image.size,
            image=inputs.image,
            mask_image=inputs.mask,
        )
        if params["keep_unmasked"]:
            image = pipe.image_processor.apply_overlay(inputs.mask, inputs.image, image)
        return MethodOutput(image)
