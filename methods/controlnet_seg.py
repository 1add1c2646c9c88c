"""ControlNet Segmentation: ControlNet v1.1 conditioned on segmentation (Zhang et al., "Adding Conditional Control to
Text-to-Image Diffusion Models", ICCV 2023).

https://arxiv.org/abs/2302.05543 — see methods/core/controlnet.py for the mechanism.
An ADE20K colour-coded label map steers the scene layout.
"""

from __future__ import annotations

from typing import Any

from methods.core.controlnet import CONTROL_PARAMS, CONTROLNET_PAPER, run_controlnet
from methods.core.costs import controlnet_cost
from methods.core.registry import register
from methods.core.slots import CONDITION_MAP, PROMPT
from methods.core.spec import Condition, EditInputs, Method, MethodOutput, RunContext, Strategy


@register
class ControlNetSeg(Method):
    name = "controlnet_seg"
    label = "ControlNet Segmentation"
    condition = Condition.SEGMENTATION
    strategy = Strategy.TRAINING_BASED
    paper = CONTROLNET_PAPER
    summary = "An ADE20K colour-coded label map steers the scene layout."
    params = CONTROL_PARAMS
    addons = ("controlnet_seg",)
    requires = (CONDITION_MAP, PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return controlnet_cost(steps, params)  # CFG plus a ControlNet pass in the control window

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        return run_controlnet(ctx, inputs, params, "controlnet_seg")
