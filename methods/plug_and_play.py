"""Plug-and-Play Diffusion Features for Text-Driven Image-to-Image Translation (Tumanyan et al., CVPR 2023).

https://arxiv.org/abs/2211.12572 — Spatial features and self-attention of the UNet decoder carry the layout of
an image while the text decides its appearance. The photo is inverted; then it is regenerated along a source
branch while a target branch starts from the same noise with the target prompt. For the first part of the
steps (tau_f, paper 0.8) the target's output of the residual block up_blocks[1].resnets[1] (its residual branch,
before the skip is added; the paper's decoder layer 4) is replaced by the source's, and for the first part
(tau_A, paper 0.5) the target's self-attention queries and keys in the decoder layers are replaced by the
source's, so the target keeps the photo's structure and takes its appearance from the prompt.
Deviations: the source features come from the regenerated source branch (identical to the inversion pivot
when the inversion is exact: null-text, direct) instead of the stored inversion latents; the injection
applies to both guidance halves from the matching source half; all decoder self-attention layers
(the official code skips the first).
"""

from __future__ import annotations

from collections.abc import Callable
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
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)


class PlugAndPlayController(AttentionController):
    """Decoder self-attention: the target uses the source's q and k. Batch: [src_uncond, tgt_uncond, src_cond,
    tgt_cond]. Its feature hook puts the source's residual-block output into the target."""

    def __init__(self, num_steps: int, feature_injection: float, attention_injection: float) -> None:
        super().__init__(num_steps)
        self.features_until = steps_until(feature_injection, num_steps)
        self.attention_until = steps_until(attention_injection, num_steps)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        if site.is_cross or site.place != "up" or self.step >= self.attention_until:
            return attend(q, k, v, site.scale)
        return attend(source_for_both(q), source_for_both(k), v, site.scale)

    def feature_hooks(self, unet: Any) -> list[tuple[torch.nn.Module, Callable[..., Any]]]:
        return [(unet.up_blocks[1].resnets[1].conv2, self.inject_features)]  # residual branch, before the skip

    def inject_features(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        # The step counter is up to date here: this block runs before the step's last attention layer.
        return source_for_both(output) if self.step < self.features_until else None


@register
class PlugAndPlay(Method):
    name = "plug_and_play"
    label = "Plug-and-Play"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "Plug-and-Play Diffusion Features for Text-Driven Image-to-Image Translation",
        2023,
        "https://arxiv.org/abs/2211.12572",
    )
    summary = "Inject the source's decoder features and self-attention into the target generation."
    params = (
        FloatParam(
            "feature_injection", 0.8, 0.0, 1.0, help="tau_f: fraction of the steps with decoder features injected."
        ),
        FloatParam(
            "attention_injection", 0.5, 0.0, 1.0, help="tau_A: fraction of the steps with self-attention q/k injected."
        ),
        ChoiceParam("inversion", "ddim", INVERSION_KINDS, help=INVERSION_HELP),
    )
    requires = (IMAGE, PROMPT)  # the source prompt is optional (the paper inverts with an empty one)
    optional = (SOURCE_PROMPT,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return branch_edit_cost(params["inversion"], steps)  # inversion, then [src, tgt] x CFG a step

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        controller = PlugAndPlayController(inputs.steps, params["feature_injection"], params["attention_injection"])
        info = {"injected steps (features/attention)": f"{controller.features_until}/{controller.attention_until}"}
        return run_controller(ctx, inputs, controller, params["inversion"], info=info)
