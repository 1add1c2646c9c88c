"""Null-text Inversion for Editing Real Images using Guided Diffusion Models (Mokady et al., CVPR 2023).

https://arxiv.org/abs/2211.09794 — Prompt-to-Prompt needs a noise latent from which guided sampling with
the source prompt regenerates the photo; plain DDIM inversion drifts under classifier-free guidance. Null-text
inversion takes the guidance-1 DDIM inversion as a pivot and, step by step from x_T, optimises only the
*unconditional* ("null") text embedding of that step so the guided DDIM step lands on the pivot's next
latent; prompts and weights stay untouched. Prompt-to-Prompt then edits with those per-step null embeddings
in both branches. The top text method of the EditEval leaderboard. Here: Prompt-to-Prompt's code
(methods/prompt_to_prompt.py) with the inversion fixed to methods.core.inversion's "null-text" kind.
"""

from __future__ import annotations

from typing import Any

from methods.core.registry import register
from methods.core.spec import IntParam, Paper, Strategy
from methods.prompt_to_prompt import P2P_PARAMS, PromptToPrompt


@register
class NullTextPromptToPrompt(PromptToPrompt):
    name = "null_text_p2p"
    label = "Null-text inversion + Prompt-to-Prompt"
    strategy = Strategy.TEST_TIME_FINETUNING  # the survey's "embedding fine-tuning"
    paper = Paper(
        "Null-text Inversion for Editing Real Images using Guided Diffusion Models",
        2023,
        "https://arxiv.org/abs/2211.09794",
    )
    summary = "Optimise the null-text embedding per step so guided sampling rebuilds the photo; then Prompt-to-Prompt."
    params = (
        *P2P_PARAMS,
        IntParam(
            "inner_steps",
            5,
            1,
            50,
            help="Adam iterations per step on the null embedding, with early stop (paper: 10).",
        ),
    )

    def inversion_setting(self, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "null-text", {"inner_steps": params["inner_steps"]}
