"""InstructPix2Pix: Learning to Follow Image Editing Instructions (Brooks et al., CVPR 2023).

https://arxiv.org/abs/2211.09800 — A Stable Diffusion UNet fine-tuned on ~450k (image, instruction, edited
image) triplets that GPT-3 and Prompt-to-Prompt generated. The UNet takes 8 input channels: the noisy latent
concatenated with the source photo's latent, and the instruction as text. Sampling uses two classifier-free
guidance scales, one for the image and one for the text:
eps = eps(z, 0, 0) + s_I (eps(z, c_I, 0) - eps(z, 0, 0)) + s_T (eps(z, c_I, c_T) - eps(z, c_I, 0)).
The edit is one forward pass per step, with no inversion or per-photo optimisation. Here: diffusers
``StableDiffusionInstructPix2PixPipeline`` with the instruct-pix2pix UNet (an add-on) over the shared VAE and
text encoder; the tab's guidance is s_T.
"""

from __future__ import annotations

from typing import Any

from diffusers import StableDiffusionInstructPix2PixPipeline

from methods.core.denoise import denoise
from methods.core.registry import register
from methods.core.slots import IMAGE, INSTRUCTION, NEGATIVE_PROMPT
from methods.core.spec import Condition, EditInputs, FloatParam, Method, MethodOutput, Paper, RunContext, Strategy


@register
class InstructPix2Pix(Method):
    name = "instruct_pix2pix"
    label = "InstructPix2Pix"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_BASED
    paper = Paper(
        "InstructPix2Pix: Learning to Follow Image Editing Instructions", 2023, "https://arxiv.org/abs/2211.09800"
    )
    summary = "A UNet trained on generated edit triplets follows an instruction in one sampling pass."
    params = (
        FloatParam(
            "image_guidance_scale",
            1.5,
            1.0,
            5.0,
            step=0.1,
            help="s_I: how closely the result keeps the photo (paper: 1.0-2.0; 1 turns image guidance off).",
        ),
    )
    addons = ("instruct_pix2pix_unet",)
    requires = (IMAGE, INSTRUCTION)
    optional = (NEGATIVE_PROMPT,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 3.0 * steps  # [text + image, image only, unconditional] a step

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        unet = ctx.backbone.addon("instruct_pix2pix_unet")
        pipe = ctx.backbone.pipeline(StableDiffusionInstructPix2PixPipeline, unet=unet)
        image = denoise(
            pipe,
            ctx,
            inputs,
            prompt=inputs.instruction,
            image=inputs.image,
            image_guidance_scale=params["image_guidance_scale"],
        )
        return MethodOutput(image)
