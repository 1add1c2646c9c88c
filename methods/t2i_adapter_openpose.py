"""T2I-Adapter OpenPose (Mou et al., "T2I-Adapter: Learning Adapters to Dig out More Controllable Ability for
Text-to-Image Diffusion Models", AAAI 2024).

https://arxiv.org/abs/2302.08453 — see methods/core/t2i_adapter.py for the mechanism. A small adapter, trained
on OpenPose skeletons with SD 1.4 frozen, turns the pose map into multi-scale features added to the UNet
encoder at every step; the image is generated from the pose and the prompt.
"""

from __future__ import annotations

from typing import Any

from methods.core.registry import register
from methods.core.slots import CONDITION_MAP, PROMPT
from methods.core.spec import Condition, EditInputs, Method, MethodOutput, RunContext, Strategy
from methods.core.t2i_adapter import ADAPTER_PARAMS, T2I_ADAPTER_PAPER, run_adapter


@register
class T2IAdapterOpenpose(Method):
    name = "t2i_adapter_openpose"
    label = "T2I-Adapter OpenPose"
    condition = Condition.POSE
    strategy = Strategy.TRAINING_BASED
    paper = T2I_ADAPTER_PAPER
    summary = "A light adapter turns the skeleton into features added to the UNet encoder (generates)."
    params = ADAPTER_PARAMS
    addons = ("t2i_adapter_openpose",)
    requires = (CONDITION_MAP, PROMPT)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        return run_adapter(ctx, inputs, params, "t2i_adapter_openpose")
