"""Re-pose inside a mask: ControlNet OpenPose + inpainting (Zhang et al., "Adding Conditional Control to
Text-to-Image Diffusion Models", ICCV 2023, with the SD inpainting model of Rombach et al., CVPR 2022).

https://arxiv.org/abs/2302.05543 — The person inside the mask is regenerated in the new pose while the rest of
the photo stays: diffusers' ``StableDiffusionControlNetInpaintPipeline`` denoises with the OpenPose
ControlNet's residuals added to the UNet, starting inside the mask from noise (strength 1) or from the
re-noised photo (strength < 1).

Which UNet. Default: the 9-channel SD 1.5 *inpainting* UNet (add-on ``inpaint_unet``). It sees the masked
photo and the mask at every step, so the new body is drawn to fit the visible scene (lighting, the edges of
the hole); the OpenPose ControlNet, trained on SD 1.5, transfers to it because the inpainting model is SD 1.5
fine-tuned, with the same encoder shapes the residuals are added to. It does not constrain the latents
outside the mask, so the unmasked pixels are pasted back from the photo (``keep_unmasked``, diffusers'
``apply_overlay``): exactly kept. The ``base`` choice keeps the shared 4-channel UNet and lets the pipeline
replace the latents outside the mask with the re-noised photo's at every step (blended latent inpainting):
no extra weights, but the new content only sees the scene through that blending, which leaves seams; outside
the mask it keeps the photo up to the VAE round trip even without pasting back.
"""

from __future__ import annotations

from typing import Any

from methods.core.controlnet import CONTROL_PARAMS, CONTROLNET_PAPER, controlnet_call, denoise
from methods.core.costs import controlnet_cost
from methods.core.registry import register
from methods.core.slots import CONDITION_MAP, IMAGE, MASK, PROMPT
from methods.core.spec import (
    BoolParam,
    ChoiceParam,
    Condition,
    EditInputs,
    Method,
    MethodOutput,
    RunContext,
    Strategy,
)


@register
class ControlNetRepose(Method):
    name = "controlnet_repose"
    label = "Re-pose in mask (ControlNet + inpainting)"
    condition = Condition.POSE
    strategy = Strategy.TRAINING_BASED
    paper = CONTROLNET_PAPER
    summary = "Regenerates only the masked region in the new pose (OpenPose ControlNet + inpainting UNet)."
    params = (
        *CONTROL_PARAMS,
        ChoiceParam(
            "unet",
            "inpainting",
            ("inpainting", "base"),
            help="inpainting: the 9-channel inpainting UNet sees the masked photo; base: latent blending, no add-on.",
        ),
        BoolParam("keep_unmasked", True, help="Paste the photo back outside the mask (apply_overlay)."),
    )
    addons = ("controlnet_openpose", "inpaint_unet")
    requires = (IMAGE, MASK, CONDITION_MAP, PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return controlnet_cost(steps, params)  # CFG plus a ControlNet pass in the control window

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        unet = ctx.backbone.addon("inpaint_unet") if params["unet"] == "inpainting" else None
        pipe, kwargs = controlnet_call(ctx, inputs, params, "controlnet_openpose", masked=True, unet=unet)
        image = denoise(ctx, pipe, kwargs)
        if params["keep_unmasked"]:
            image = pipe.image_processor.apply_overlay(inputs.mask, inputs.image, image)
        return MethodOutput(image, info={"unet": params["unet"], "outside the mask": _kept(params)})


def _kept(params: dict[str, Any]) -> str:
    if params["keep_unmasked"]:
        return "pasted back from the photo"
    return "VAE round trip of the photo" if params["unet"] == "base" else "as the inpainting UNet drew it"
