"""LEDITS++: Limitless Image Editing using Text-to-Image Models (Brack et al., CVPR 2024).

https://arxiv.org/abs/2311.16711 — Invert the photo with edit-friendly DPM-Solver++ inversion: noise it
independently to every level, then solve for the noise maps z_t that make each sampler step land exactly on
the next level (a source prompt, if given, steers the inversion with guidance). Sampling with those z_t
reproduces the photo; adding *semantic guidance* per edit concept c_i changes it:
eps = eps_uncond + sum_i s_e * M_i * (eps_c_i - eps_uncond) (sign flipped to remove a concept). The implicit
masks M_i are the intersection of M1 (the concept's cross-attention map at 1/4 latent resolution, smoothed,
above its lambda quantile) and M2 (the largest |guidance| entries, above the same quantile), so each concept
only changes where it belongs, and several concepts edit at once. Here: diffusers
``LEditsPPPipelineStableDiffusion`` over the shared modules with a fresh ``sde-dpmsolver++`` order-2
scheduler set up so that sampling retraces the inversion exactly (see ``ledits_scheduler``); the masks are
the pipeline's own ``activation_mask`` (one per step and concept), shown averaged over the steps. On a UNet
without cross-attention at 1/4 latent resolution (a custom, smaller one) only M2 is available and is used, with
a note. The tab's guidance scale is unused (edit and inversion guidance are parameters); a negative prompt
replaces the unconditional branch at edit time only, as in the pipeline, so the photo is then not retraced.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from diffusers import DPMSolverMultistepScheduler, LEditsPPPipelineStableDiffusion
from PIL import Image

from methods.core.registry import register
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT, SOURCE_PROMPT
from methods.core.spec import (
    BoolParam,
    ChoiceParam,
    Condition,
    EditInputs,
    FloatParam,
    InputError,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)

# implicit mask -> (use_cross_attn_mask, use_intersect_mask) of the pipeline
MASKS = {"intersect": (True, True), "attention": (True, False), "noise": (False, False)}


@register
class LeditsPP(Method):
    name = "ledits_pp"
    label = "LEDITS++"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "LEDITS++: Limitless Image Editing using Text-to-Image Models", 2024, "https://arxiv.org/abs/2311.16711"
    )
    summary = "Exact DPM-Solver++ inversion, then semantic guidance per concept inside implicit masks."
    params = (
        FloatParam("edit_guidance_scale", 7.5, 0.0, 20.0, step=0.5, help="s_e: strength of each edit concept."),
        FloatParam("edit_threshold", 0.9, 0.5, 0.99, step=0.01, help="lambda: mask quantile (0.9 edits the top 10 %)."),
        BoolParam("reverse_editing_direction", False, help="Remove the concepts instead of adding them."),
        BoolParam("split_concepts", True, help="Treat each comma-separated part of the prompt as its own concept."),
        ChoiceParam(
            "implicit_mask",
            "intersect",
            tuple(MASKS),
            help="intersect = attention ∩ noise masks (paper); attention = M1 only; noise = M2 only.",
        ),
        FloatParam("skip", 0.15, 0.0, 0.6, help="Fraction of the noisiest steps skipped (lower = stronger edits)."),
        FloatParam("source_guidance_scale", 3.5, 1.0, 15.0, step=0.5, help="Guidance of the source prompt."),
    )
    requires = (IMAGE, PROMPT)
    optional = (SOURCE_PROMPT, NEGATIVE_PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 4.0 * steps  # inversion: uncond + source prompt a step; sampling: uncond + one concept a step

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone = ctx.backbone
        concepts = edit_concepts(inputs.prompt, params["split_concepts"])
        info: dict[str, Any] = {"concepts": " | ".join(concepts)}
        mask_kind = params["implicit_mask"]
        if mask_kind != "noise" and not has_quarter_resolution_attention(backbone.unet):
            info["implicit_mask"] = (
                f"noise only ({mask_kind} needs cross-attention at 1/4 latent resolution, which this UNet lacks)"
            )
            mask_kind = "noise"
        use_cross_attn_mask, use_intersect_mask = MASKS[mask_kind]

        pipe = backbone.pipeline(LEditsPPPipelineStableDiffusion, scheduler=ledits_scheduler(backbone.scheduler))
        steps = max(1, inputs.steps)
        # invert() and __call__ replace the shared UNet's attention processors: the runner's borrowed() restores them
        pipe.invert(
            image=inputs.image,
            source_prompt=inputs.source_prompt,
            source_guidance_scale=params["source_guidance_scale"],
            num_inversion_steps=steps,
            skip=params["skip"],
            generator=ctx.generator,
        )
        ctx.report(steps, 2 * steps)

        image = pipe(
            editing_prompt=concepts,
            negative_prompt=inputs.negative_prompt or None,
            reverse_editing_direction=params["reverse_editing_direction"],
            edit_guidance_scale=params["edit_guidance_scale"],
            edit_threshold=params["edit_threshold"],
            use_cross_attn_mask=use_cross_attn_mask,
            use_intersect_mask=use_intersect_mask,
            generator=ctx.generator,
            callback_on_step_end=ctx.diffusers_callback(2 * steps, steps),
        ).images[0]
        extras = [
            (mask_image(mask, image.size), f"implicit mask “{concept}” ({mask_kind}, mean over {steps} steps)")
            for concept, mask in zip(concepts, implicit_masks(pipe), strict=True)
        ]
        return MethodOutput(image, info, extras)


def ledits_scheduler(base: Any) -> DPMSolverMultistepScheduler:
    """The scheduler LEDITS++'s inversion solves for: SDE-DPM-Solver++ of order 2 at every step.

    ``invert`` computes each noise map for a second-order step ending at a non-zero sigma. Since diffusers 0.26
    the scheduler defaults to a final sigma of zero (noise maps of the last step become 0 and it falls back to
    first order) and, below 15 steps, to first-order final steps; then sampling no longer retraces the
    inversion. ``sigma_min`` and ``lower_order_final=False`` restore the exact reconstruction the paper relies on.
    """
    return DPMSolverMultistepScheduler.from_config(
        base.config,
        algorithm_type="sde-dpmsolver++",
        solver_order=2,
        final_sigmas_type="sigma_min",
        lower_order_final=False,
    )


def edit_concepts(prompt: str, split: bool) -> list[str]:
    """The edit concepts: the comma/semicolon-separated parts of the prompt, or the whole prompt."""
    parts = [p.strip() for p in prompt.replace(";", ",").split(",")] if split else [prompt.strip()]
    concepts = [p for p in parts if p]
    if not concepts:
        raise InputError("Write at least one edit concept in the target prompt, e.g. “snow, winter”.")
    return concepts


def has_quarter_resolution_attention(unet: Any) -> bool:
    """Whether the UNet has cross-attention at 1/4 of the latent resolution (down block 2), where the
    pipeline reads its attention masks (SD 1.5: yes; the 2-level tiny UNet: no)."""
    blocks = unet.config.down_block_types
    return len(blocks) > 2 and "CrossAttn" in blocks[2]


def implicit_masks(pipe: Any) -> list[np.ndarray]:
    """Per concept, the fraction of steps in which each latent pixel was edited (pipeline's activation_mask).

    ``activation_mask`` has shape (steps, concepts, batch, channels, h, w); channels repeat the same mask.
    """
    masks = pipe.activation_mask
    if masks is None:
        return []
    return [masks[:, c, 0, 0].float().mean(dim=0).numpy() for c in range(masks.shape[1])]


def mask_image(mask: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A latent-grid mask in [0, 1] as a grey image of ``size`` (nearest, so latent cells stay visible)."""
    grey = Image.fromarray(np.clip(mask * 255.0, 0, 255).round().astype(np.uint8))
    return grey.resize(size, Image.Resampling.NEAREST)
