"""DiffEdit: Diffusion-based Semantic Image Editing with Mask Guidance (Couairon et al., ICLR 2023).

https://arxiv.org/abs/2210.11427 — Three steps, no training. (1) Mask: noise the photo to a middle level
(mask encode strength, 50 %) several times and compare the noise the model predicts under the target prompt
with the one under the source prompt; where they differ (averaged over the noise draws and channels, clamped
at ``mask_thresholding_ratio`` x its mean, binarised at 0.5) is where the edit belongs. (2) Encode: DDIM-invert
the photo to the level r (inpaint strength), unconditionally in the paper. (3) Decode: DDIM-sample from x_r
with the target prompt (classifier-free guidance), and after every step replace the latent outside the mask
with the inverted latent of the same level, so the background is kept. Here: diffusers
``StableDiffusionDiffEditPipeline`` (``generate_mask``, ``invert`` with a ``DDIMInverseScheduler``, then the
masked decoding) over the shared modules; the mask is shown next to the result. As written in diffusers,
each step's output is blended with the inverted latent of that step's *input* level (one level noisier than
the paper's), and the last blend uses the latent at t=1, not x_0; the hub keeps the pipeline as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from diffusers import DDIMInverseScheduler, StableDiffusionDiffEditPipeline
from PIL import Image

from methods.core.costs import denoised
from methods.core.denoise import denoise
from methods.core.limits import denoising_steps
from methods.core.registry import register
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT, SOURCE_PROMPT
from methods.core.spec import (
    BoolParam,
    Condition,
    EditInputs,
    FloatParam,
    IntParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)


@register
class DiffEdit(Method):
    name = "diffedit"
    label = "DiffEdit"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "DiffEdit: Diffusion-based Semantic Image Editing with Mask Guidance", 2023, "https://arxiv.org/abs/2210.11427"
    )
    summary = "A mask from where source and target prompts disagree; DDIM-encode, decode inside the mask."
    params = (
        FloatParam("mask_encode_strength", 0.5, 0.1, 1.0, help="Noise level at which the mask is estimated."),
        FloatParam(
            "mask_thresholding_ratio",
            3.0,
            0.5,
            10.0,
            step=0.1,
            help="Clamp the difference map at this x its mean, binarise at half; lower = larger mask.",
        ),
        IntParam("num_maps_per_mask", 10, 1, 20, help="Noise draws averaged into the mask (paper: 10)."),
        FloatParam("inpaint_strength", 0.8, 0.1, 1.0, help="r: how far the photo is DDIM-encoded (paper: 0.5-0.8)."),
        BoolParam(
            "encode_with_source_prompt",
            False,
            help="DDIM-encode with the source prompt (diffusers' example) instead of unconditionally (paper).",
        ),
    )
    requires = (IMAGE, SOURCE_PROMPT, PROMPT)
    optional = (NEGATIVE_PROMPT,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        encoded = denoised(steps, params["inpaint_strength"])
        encoding = 2.0 if params["encode_with_source_prompt"] else 1.0
        # mask: [uncond, cond] x [target, source] per noise draw; DDIM encode; masked CFG decode
        return 4.0 * params["num_maps_per_mask"] + encoding * encoded + 2.0 * encoded

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone = ctx.backbone
        pipe = backbone.pipeline(
            StableDiffusionDiffEditPipeline, inverse_scheduler=backbone.scheduler_copy(DDIMInverseScheduler)
        )
        steps = max(1, inputs.steps)
        encoded = denoising_steps(steps, params["inpaint_strength"])
        total = 1 + 2 * encoded

        # 1. the mask: where the target and source prompts predict different noise
        mask = pipe.generate_mask(
            image=inputs.image,
            source_prompt=inputs.source_prompt,
            target_prompt=inputs.prompt,
            num_maps_per_mask=params["num_maps_per_mask"],
            mask_encode_strength=params["mask_encode_strength"],
            mask_thresholding_ratio=params["mask_thresholding_ratio"],
            num_inference_steps=steps,
            guidance_scale=inputs.guidance,
            generator=ctx.generator,
        )
        ctx.report(1, total)

        # 2. DDIM-encode the photo to the inpaint strength
        latents = pipe.invert(
            prompt=inputs.source_prompt if params["encode_with_source_prompt"] else "",
            image=inputs.image,
            num_inference_steps=steps,
            inpaint_strength=params["inpaint_strength"],
            guidance_scale=inputs.guidance if params["encode_with_source_prompt"] else 1.0,
            generator=ctx.generator,
            callback=lambda step, t, z: ctx.report(2 + step, total),
        ).latents

        # 3. decode with the target prompt, keeping the encoded latents outside the mask
        image = denoise(
            pipe,
            ctx,
            inputs,
            done=1 + encoded,
            total=total,
            mask_image=mask,
            image_latents=latents,
            inpaint_strength=params["inpaint_strength"],
        )
        coverage = float(mask.mean())
        shown = Image.fromarray((mask[0] * 255).astype(np.uint8)).resize(image.size, Image.Resampling.NEAREST)
        extras = [(shown, f"automatic mask ({coverage:.0%} of the latent grid)")]
        return MethodOutput(image, {"mask_coverage": round(coverage, 3)}, extras)
