"""Paint by Example: Exemplar-based Image Editing with Diffusion Models (Yang et al., CVPR 2023).

https://arxiv.org/abs/2211.13227 — Instead of a text prompt, an *exemplar image* says what should fill a
masked region of the source photo. Stable Diffusion's inpainting setup (a UNet with 9 input channels: the
noisy latent, the masked source's latent and the mask) is fine-tuned with its text context replaced by a
single token from a CLIP image encoder: the exemplar's class embedding, passed through a small
transformer "mapper" and projected to the UNet's context size. The information bottleneck of that one
token, heavy augmentation of exemplar and mask, and training on self-supervised pairs (an object cut from
a photo is its own exemplar) make the model re-draw the object so it fits the scene instead of copying
it. Classifier-free guidance uses a learned unconditional vector. The hub runs diffusers'
``PaintByExamplePipeline`` with the Paint-by-Example UNet and exemplar encoder (add-ons) over the shared
VAE; the unmasked pixels are pasted back from the source (``apply_overlay``), as for SD inpainting.
"""

from __future__ import annotations

from typing import Any

from diffusers import PaintByExamplePipeline

from methods.core.denoise import progress
from methods.core.registry import register
from methods.core.slots import IMAGE, MASK, PROMPT, REFERENCE
from methods.core.spec import BoolParam, Condition, EditInputs, Method, MethodOutput, Paper, RunContext, Strategy


@register
class PaintByExample(Method):
    name = "paint_by_example"
    label = "Paint-by-Example"
    condition = Condition.REFERENCE
    strategy = Strategy.TRAINING_BASED
    paper = Paper(
        "Paint by Example: Exemplar-based Image Editing with Diffusion Models",
        2023,
        "https://arxiv.org/abs/2211.13227",
    )
    summary = "An inpainting UNet conditioned on the exemplar's CLIP embedding paints the exemplar into the mask."
    params = (BoolParam("keep_unmasked", True, help="Paste the source back outside the mask (apply_overlay)."),)
    addons = ("paint_by_example_unet", "paint_by_example_image_encoder")
    requires = (IMAGE, REFERENCE, MASK)
    optional = (PROMPT,)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        encoder, processor = ctx.backbone.addon("paint_by_example_image_encoder")
        pipe = ctx.backbone.pipeline(
            PaintByExamplePipeline,
            unet=ctx.backbone.addon("paint_by_example_unet"),
            image_encoder=encoder,
            feature_extractor=processor,
        )
        image = pipe(
            example_image=inputs.reference,
            image=inputs.image,
            mask_image=inputs.mask,
            num_inference_steps=inputs.steps,
            guidance_scale=inputs.guidance,
            generator=ctx.generator,
            **progress(pipe, ctx, inputs.steps),
        ).images[0]
        info = {"prompt": "unused (the exemplar is the only condition)"} if inputs.prompt else {}
        if params["keep_unmasked"]:
            image = pipe.image_processor.apply_overlay(inputs.mask, inputs.image, image)
        return MethodOutput(image, info)
