"""SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations (Meng et al., 2022).

https://arxiv.org/abs/2108.01073 — Perturb the source image with noise up to an intermediate time
t0 = strength x T, then run the reverse diffusion conditioned on the target prompt. Small strengths keep
the layout and colours of the source; large ones follow the prompt more. On Stable Diffusion this is the
image-to-image pipeline (diffusers ``StableDiffusionImg2ImgPipeline``), used here as it is.
"""

from __future__ import annotations

from typing import Any

from diffusers import StableDiffusionImg2ImgPipeline

from methods.core.costs import denoised
from methods.core.denoise import denoise
from methods.core.registry import register
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import Condition, EditInputs, FloatParam, Method, MethodOutput, Paper, RunContext, Strategy


@register
class SDEdit(Method):
    name = "sdedit"
    label = "SDEdit"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations",
        2022,
        "https://arxiv.org/abs/2108.01073",
    )
    summary = "Noise the photo to an intermediate step, denoise towards the target prompt."
    params = (FloatParam("strength", 0.6, 0.05, 1.0, help="How far into the noise the photo is pushed (t0/T)."),)
    requires = (IMAGE, PROMPT)
    optional = (NEGATIVE_PROMPT,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 2.0 * denoised(steps, params["strength"])  # img2img: int(steps x strength) CFG steps

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        pipe = ctx.backbone.pipeline(StableDiffusionImg2ImgPipeline)
        return MethodOutput(sdedit(pipe, ctx, inputs, inputs.prompt, params["strength"]))


def sdedit(pipe: Any, ctx: RunContext, inputs: EditInputs, prompt: str, strength: float) -> Any:
    """One img2img call with the hub's shared inputs (also used by the audio method)."""
    return denoise(pipe, ctx, inputs, prompt=prompt, strength=strength, image=inputs.image)
