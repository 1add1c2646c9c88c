"""ControlNet Scribble: ControlNet v1.1 conditioned on sketch (Zhang et al., "Adding Conditional Control to
Text-to-Image Diffusion Models", ICCV 2023).

https://arxiv.org/abs/2302.05543 — see methods/core/controlnet.py for the mechanism.
Free-hand strokes (white on black) steer the layout.
"""

from __future__ import annotations

from typing import Any

from methods.core.controlnet import CONTROL_PARAMS, CONTROLNET_PAPER, run_controlnet
from methods.core.costs import controlnet_cost
from methods.core.registry import register
from methods.core.slots import CONDITION_MAP, PROMPT
from methods.core.spec import Condition, EditInputs, Method, MethodOutput, RunContext, Strategy


@register
class ControlNetScribble(Method):
    name = "controlnet_scribble"
    label = "ControlNet Scribble"
    condition = Condition.SKETCH
    strategy = Strategy.TRAINING_BASED
    paper = CONTROLNET_PAPER
    summary = "Free-hand strokes (white on black) steer the layout."
    params = CONTROL_PARAMS
    addons = ("controlnet_scribble",)
    requires = (CONDITION_MAP, PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return controlnet_cost(steps, params)  # CFG plus a ControlNet pass in the control window

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        return run_controlnet(ctx, inputs, params, "controlnet_scribble")
