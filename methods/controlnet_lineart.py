"""ControlNet Lineart: ControlNet v1.1 conditioned on line art (Zhang et al., "Adding Conditional Control to
Text-to-Image Diffusion Models", ICCV 2023).

https://arxiv.org/abs/2302.05543 — see methods/core/controlnet.py for the mechanism.
Trained on line drawings extracted by the lineart annotator (white lines on black): clean contours steer the
picture, more tightly than free scribbles.
"""

from __future__ import annotations

from typing import Any

from methods.core.controlnet import CONTROL_PARAMS, CONTROLNET_PAPER, run_controlnet
from methods.core.costs import controlnet_cost
from methods.core.registry import register
from methods.core.slots import CONDITION_MAP, PROMPT
from methods.core.spec import Condition, EditInputs, Method, MethodOutput, RunContext, Strategy


@register
class ControlNetLineart(Method):
    name = "controlnet_lineart"
    label = "ControlNet Lineart"
    condition = Condition.SKETCH
    strategy = Strategy.TRAINING_BASED
    paper = CONTROLNET_PAPER
    summary = "Line art (white lines on black) steers the contours."
    params = CONTROL_PARAMS
    addons = ("controlnet_lineart",)
    requires = (CONDITION_MAP, PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return controlnet_cost(steps, params)  # CFG plus a ControlNet pass in the control window

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        return run_controlnet(ctx, inputs, params, "controlnet_lineart")
