"""Multi-ControlNet: segmentation + pose at once (Zhang et al., "Adding Conditional Control to Text-to-Image
Diffusion Models", ICCV 2023, section "Composing multiple ControlNets").

https://arxiv.org/abs/2302.05543 — ControlNets trained separately on one condition each can be combined
without further training: every ControlNet reads its own map (here the ADE20K segmentation map and an OpenPose
skeleton) and the frozen UNet receives the *sum* of their residuals, each multiplied by its own conditioning
scale, at every denoising step. The scene layout comes from the segmentation map and the person's posture from
the skeleton. The hub passes both ControlNet add-ons to diffusers' ``MultiControlNetModel`` in the ordinary
ControlNet pipeline (image-to-image under control with a source photo, generation without one); with the pose
scale at 0 the result equals ControlNet Segmentation alone.
"""

from __future__ import annotations

from typing import Any

from methods.core.controlnet import CONTROLNET_PAPER, denoise, multi_controlnet_call
from methods.core.costs import controlnet_cost
from methods.core.registry import register
from methods.core.slots import CONDITION_MAP, IMAGE, PROMPT, SECOND_POSE
from methods.core.spec import (
    Condition,
    EditInputs,
    FloatParam,
    Method,
    MethodOutput,
    RunContext,
    Strategy,
)


@register
class MultiControlNet(Method):
    name = "multi_controlnet"
    label = "Multi-ControlNet (segmentation + pose)"
    condition = Condition.SEGMENTATION
    strategy = Strategy.TRAINING_BASED
    paper = CONTROLNET_PAPER
    summary = "Two ControlNets at once: the map sets the scene, a pose skeleton the person; residuals are summed."
    params = (
        FloatParam(
            "seg_scale", 1.0, 0.0, 2.0, label="Segmentation weight", help="Scale of the ControlNet-Seg residuals."
        ),
        FloatParam(
            "pose_scale", 1.0, 0.0, 2.0, label="Pose weight", help="Scale of the ControlNet-OpenPose residuals."
        ),
        FloatParam("control_start", 0.0, 0.0, 1.0, help="Fraction of the steps at which both controls start."),
        FloatParam("control_end", 1.0, 0.0, 1.0, help="Fraction of the steps at which both controls stop."),
        FloatParam("strength", 1.0, 0.05, 1.0, help="With a source photo: how much of it is re-noised (1 = all)."),
    )
    addons = ("controlnet_seg", "controlnet_openpose")
    requires = (CONDITION_MAP, PROMPT, SECOND_POSE)
    optional = (IMAGE,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return controlnet_cost(steps, params, nets=2)  # CFG plus two ControlNet passes in the window

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        controls = [
            ("controlnet_seg", inputs.control_image, params["seg_scale"]),
            ("controlnet_openpose", inputs[SECOND_POSE], params["pose_scale"]),
        ]
        image = denoise(ctx, *multi_controlnet_call(ctx, inputs, params, controls))
        mode = "img2img under control" if inputs.image is not None else "generated from the conditions"
        return MethodOutput(image, info={"mode": mode}, extras=[(inputs[SECOND_POSE], "pose map")])
