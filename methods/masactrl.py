"""MasaCtrl: Tuning-Free Mutual Self-Attention Control for Consistent Image Synthesis and Editing (Cao et al.,
ICCV 2023).

https://arxiv.org/abs/2304.08465 — For non-rigid edits (a pose, an action) the layout must change while the
object's identity and texture stay. MasaCtrl denoises the source branch and the target branch (target prompt)
from the same inverted noise; from denoising step S and UNet transformer layer L on (paper: S = 4 of 50 steps,
L = 10 of SD 1.5's 16 layers, i.e. the decoder), the target's self-attention *queries* attend to the *source's*
keys and values ("mutual self-attention"): the target lays out its own structure in the early steps and layers
and fills it with the source's content afterwards. On a photo both branches start from its inversion with the
source prompt. Omitted: the mask-guided variant (masks from cross-attention). Deviation: the source branch is
regenerated from the inversion (identical to the pivot when the inversion is exact) instead of being replaced
by the stored inversion latents at each step as in the official code.
"""

from __future__ import annotations

from typing import Any

import torch

from methods.core.attention import AttentionController, Site, attend, source_for_both, steps_until
from methods.core.branches import run_controller
from methods.core.costs import branch_edit_cost
from methods.core.inversion import INVERSION_HELP, INVERSION_KINDS
from methods.core.registry import register
from methods.core.slots import IMAGE, PROMPT, SOURCE_PROMPT
from methods.core.spec import (
    ChoiceParam,
    Condition,
    EditInputs,
    FloatParam,
    IntParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)

SD15_LAYERS = 16  # transformer layers of SD 1.5's UNet, in which the paper counts L


class MutualSelfAttention(AttentionController):
    """From step S and layer L: the target's queries attend to the source's keys and values.

    Batch: [src_uncond, tgt_uncond, src_cond, tgt_cond]; each guidance half uses its own source row.
    """

    def __init__(self, num_steps: int, start_step: float, start_layer: int) -> None:
        super().__init__(num_steps)
        self.start = steps_until(start_step, num_steps)
        self.start_layer = start_layer

    def first_layer(self, site: Site) -> int:
        """L in this UNet's layer count (SD 1.5's numbering mapped proportionally onto smaller UNets)."""
        return round(self.start_layer * site.count / SD15_LAYERS)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        if site.is_cross or self.step < self.start or site.index < self.first_layer(site):
            return attend(q, k, v, site.scale)
        return attend(q, source_for_both(k), source_for_both(v), site.scale)


@register
class MasaCtrl(Method):
    name = "masactrl"
    label = "MasaCtrl"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "MasaCtrl: Tuning-Free Mutual Self-Attention Control for Consistent Image Synthesis and Editing",
        2023,
        "https://arxiv.org/abs/2304.08465",
    )
    summary = "Non-rigid edits: the target's self-attention queries read the source's keys and values."
    params = (
        FloatParam(
            "start_step", 0.08, 0.0, 1.0, step=0.02, help="S as a fraction of the steps (paper: 4 of 50 = 0.08)."
        ),
        IntParam(
            "start_layer",
            10,
            0,
            SD15_LAYERS,
            help="L among SD 1.5's 16 attention layers (10 = the decoder's last 6; smaller UNets map it).",
        ),
        ChoiceParam("inversion", "ddim", INVERSION_KINDS, help=INVERSION_HELP),
    )
    requires = (IMAGE, PROMPT)  # the source prompt is optional (the paper's real-image demo uses "")
    optional = (SOURCE_PROMPT,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return branch_edit_cost(params["inversion"], steps)  # inversion, then [src, tgt] x CFG a step

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        controller = MutualSelfAttention(inputs.steps, params["start_step"], params["start_layer"])
        info = {"mutual self-attention from step": controller.start}
        return run_controller(ctx, inputs, controller, params["inversion"], info=info)
