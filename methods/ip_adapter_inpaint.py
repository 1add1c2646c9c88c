"""IP-Adapter inside a mask: insert the reference's content into a region, keep the rest (Ye et al., 2023).

https://arxiv.org/abs/2308.06721 — IP-Adapter adds a decoupled cross-attention on CLIP image tokens of the
reference to every cross-attention layer of the frozen UNet (Z = Attn(Q, K_text, V_text) + lambda *
Attn(Q, K_image, V_image)), so the reference acts as an image prompt. Because the adapter only touches
cross-attention, it plugs into any UNet of the SD 1.5 family, including the inpainting one. Here it runs
on diffusers' ``StableDiffusionInpaintPipeline``: by default with the 9-channel SD inpainting UNet (the
``inpaint_unet`` add-on, trained to fill a hole consistently with the visible context, which is what the
IP-Adapter authors use for inpainting), or with the shared base UNet, where the pipeline instead blends
the source's noised latents back outside the mask at every step (RePaint/Blended-Latent style, cheaper
but seams show). The unmasked pixels are then pasted back from the source (``apply_overlay``), so they
are kept exactly rather than up to the VAE round trip.
"""

from __future__ import annotations

from typing import Any

from diffusers import StableDiffusionInpaintPipeline

from methods.core.denoise import denoise
from methods.core.registry import register
from methods.core.slots import IMAGE, MASK, NEGATIVE_PROMPT, PROMPT, REFERENCE
from methods.core.spec import (
    BoolParam,
    ChoiceParam,
    Condition,
    EditInputs,
    FloatParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)
from methods.ip_adapter import ip_adapter_loaded

INPAINTING, BASE = "inpainting UNet", "base UNet + latent blending"


@register
class IPAdapterInpaint(Method):
    name = "ip_adapter_inpaint"
    label = "IP-Adapter (inside a mask)"
    condition = Condition.REFERENCE
    strategy = Strategy.TRAINING_BASED
    paper = Paper(
        "IP-Adapter: Text Compatible Image Prompt Adapter for Text-to-Image Diffusion Models",
        2023,
        "https://arxiv.org/abs/2308.06721",
    )
    summary = "IP-Adapter on the inpainting pipeline: the reference is inserted into the mask, the rest is kept."
    params = (
        FloatParam(
            "ip_adapter_scale",
            0.8,
            0.0,
            1.5,
            label="IP-Adapter scale",
            help="Weight lambda of the image cross-attention (0 = plain text inpainting).",
        ),
        FloatParam("strength", 1.0, 0.05, 1.0, help="1.0 repaints the masked region from pure noise."),
        ChoiceParam(
            "unet",
            INPAINTING,
            (INPAINTING, BASE),
            label="UNet",
            help="The 9-channel inpainting UNet sees the visible context; the base UNet only blends latents.",
        ),
        BoolParam("keep_unmasked", True, help="Paste the source back outside the mask (apply_overlay)."),
    )
    addons = ("inpaint_unet", "ip_adapter", "ip_adapter_image_encoder")
    requires = (IMAGE, REFERENCE, MASK)
    optional = (PROMPT, NEGATIVE_PROMPT)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        components = {"image_encoder": ctx.backbone.addon("ip_adapter_image_encoder")}
        if params["unet"] == INPAINTING:
            components["unet"] = ctx.backbone.addon("inpaint_unet")
        pipe = ctx.backbone.pipeline(StableDiffusionInpaintPipeline, **components)
        with ip_adapter_loaded(pipe, ctx.backbone.addon("ip_adapter"), params["ip_adapter_scale"]):
            image = denoise(
                pipe,
                ctx,
                inputs,
                strength=params["strength"],
                size=inputs.image.size,
                image=inputs.image,
                mask_image=inputs.mask,
                ip_adapter_image=inputs.reference,
            )
        if params["keep_unmasked"]:
            image = pipe.image_processor.apply_overlay(inputs.mask, inputs.image, image)
        return MethodOutput(image)
