"""SDEdit restricted to a mask (Meng et al., "SDEdit: Guided Image Synthesis and Editing with Stochastic
Differential Equations", ICLR 2022).

https://arxiv.org/abs/2108.01073 — SDEdit noises the source to an intermediate time t0 = strength x T and
denoises it towards the prompt; the paper's local editing variant (Sec. 4.3) keeps the region outside the
mask fixed: after every reverse step the unmasked part is replaced by the source perturbed to the same
noise level, so only the masked region is re-synthesised while it stays in the source's layout and
colours (small strengths) or follows the prompt more (large ones). On Stable Diffusion this is
img2img with latent blending, which diffusers' ``StableDiffusionInpaintPipeline`` does for a 4-channel
(base) UNet at ``strength < 1``; the hub calls it over the shared modules.
"""

from __future__ import annotations

from typing import Any

from methods.core import masks
from methods.core.costs import denoised
from methods.core.masked_edit import blended_inpaint, finish, mask_params
from methods.core.registry import register
from methods.core.slots import IMAGE, MASK, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import Condition, EditInputs, FloatParam, Method, MethodOutput, Paper, RunContext, Strategy


@register
class MaskedSDEdit(Method):
    name = "masked_sdedit"
    label = "SDEdit inside the mask"
    condition = Condition.MASK
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations",
        2022,
        "https://arxiv.org/abs/2108.01073",
    )
    summary = "Noise the photo to t0 and denoise towards the prompt, keeping the noised source outside the mask."
    params = (
        FloatParam("strength", 0.6, 0.05, 1.0, help="How far into the noise the photo is pushed (t0/T)."),
        *mask_params(0.0),
    )
    requires = (IMAGE, MASK, PROMPT)
    optional = (NEGATIVE_PROMPT,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 2.0 * denoised(steps, params["strength"])  # img2img: int(steps x strength) CFG steps

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        mask = masks.dilate(masks.check_mask(inputs.mask, inputs.image.size), params["dilate"])
        result = blended_inpaint(ctx, inputs, inputs.image, mask, params["strength"])
        return MethodOutput(finish(inputs, result, mask, params))
