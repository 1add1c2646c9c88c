"""SDEdit from strokes (Meng et al., "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential
Equations", ICLR 2022) — the paper's own stroke-based synthesis and editing.

https://arxiv.org/abs/2108.01073 — A colour stroke painting (alone, or painted over a photo) is a rough
"guide" image off the manifold of real images. SDEdit perturbs it with noise up to t0 = strength x T, where
the coarse colours and layout survive but the crude stroke texture is drowned, then runs the reverse
diffusion conditioned on the prompt, which pulls it back onto realistic images. No model is trained and
no condition network is used: on Stable Diffusion this is the image-to-image pipeline (diffusers
``StableDiffusionImg2ImgPipeline``) started from the stroke painting itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from diffusers import StableDiffusionImg2ImgPipeline

from methods.core.costs import denoised
from methods.core.registry import register
from methods.core.slots import IMAGE, PROMPT, STROKES
from methods.core.spec import Condition, EditInputs, FloatParam, Method, MethodOutput, RunContext, Strategy
from methods.sdedit import SDEdit, sdedit


@register
class SDEditStrokes(Method):
    name = "sdedit_strokes"
    label = "SDEdit from strokes"
    condition = Condition.SKETCH
    strategy = Strategy.TRAINING_FREE
    paper = SDEdit.paper
    summary = "Noise the colour stroke painting part-way, denoise it into a picture of the prompt."
    params = (
        FloatParam(
            "strength",
            0.75,
            0.05,
            1.0,
            help="How far into the noise the painting is pushed (t0/T): low keeps the strokes, high the prompt.",
        ),
    )
    requires = (PROMPT, STROKES)
    optional = (IMAGE,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 2.0 * denoised(steps, params["strength"])  # SDEdit of the strokes: int(steps x strength) CFG steps

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        strokes = inputs[STROKES].convert("RGB")
        size = inputs.image.size if inputs.image is not None else strokes.size
        if strokes.size != size:
            strokes = strokes.resize(size)
        pipe = ctx.backbone.pipeline(StableDiffusionImg2ImgPipeline)
        image = sdedit(pipe, ctx, replace(inputs, image=strokes), inputs.prompt, params["strength"])
        return MethodOutput(image, info={"start": "the stroke painting"})
