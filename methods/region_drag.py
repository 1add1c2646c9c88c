"""RegionDrag: Fast Region-Based Image Editing with Diffusion Models (Lu et al., 2024).

https://arxiv.org/abs/2407.18247 (ECCV 2024; official code github.com/Visual-AI/RegionDrag). Gradient-free and a
single pass: invert the photo to ``start_t`` of the schedule, keeping the latent of every level (the official
"Encode then CP" uses SDE-Drag's cycle-SDE, the default here; plain DDIM inversion is the other choice), and
replace the handle regions of the noisiest latent with noise (``noise_scale``). Then denoise; before each step
whose level is at or above ``end_t`` every target region's latent is overwritten by its handle region's latent
from the inversion at the same level, mapped cell by cell (a nearest-neighbour resize, so the regions may differ
in size); outside the mask the inversion's latent of the level is taken. The UNet runs on [inversion latent,
edited latent] in one batch and the edited branch's self-attention reads the inversion branch's keys and values
(the official code's K/V "paste" hooks, here an AttentionController); with the cycle-SDE the inversion branch's
eps also gives the recorded noise. Regions come from the REGIONS slot; without them every point drag becomes the
square of half side max(8, min(w, h) // 6) px around its handle moved onto the same square around its target
(``methods.core.drag_regions.regions_from_drags``).
Changes: no IP-Adapter image prompt (the official code adds the photo's at scale 0.5); rectangles only (no
triangles / quadrilaterals); copying stops below ``end_t`` as the paper describes (the official code compares a
timestep with a step count, so it copies at every step); the last latent is blended with the photo's outside the
mask instead of pasting pixels back; DDIM levels of the tab's step count; guidance 1 as the official code (the
tab's guidance scale is unused); the photo's latent is the VAE mean (the official code samples it).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

from methods.core.attention import controlled
from methods.core.costs import fraction_steps
from methods.core.ddim import sampling_schedule
from methods.core.drag_regions import (
    CycleSDE,
    box_cells,
    draw_regions,
    editable_cells,
    region_cells,
    regions_from_drags,
    validated_drags,
    validated_regions,
)
from methods.core.inversion import invert_image
from methods.core.latents import decode_latents, encode_image, encode_prompt, predict_noise
from methods.core.registry import register
from methods.core.slots import DRAGS, IMAGE, MASK, PROMPT, REGIONS
from methods.core.spec import (
    ChoiceParam,
    Condition,
    EditInputs,
    FloatParam,
    InputError,
    Method,
    MethodOutput,
    Paper,
    RegionPair,
    RunContext,
    Strategy,
)
from methods.masactrl import MutualSelfAttention


@register
class RegionDrag(Method):
    name = "region_drag"
    label = "RegionDrag"
    condition = Condition.DRAG
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "RegionDrag: Fast Region-Based Image Editing with Diffusion Models", 2024, "https://arxiv.org/abs/2407.18247"
    )
    summary = "Invert once, copy each handle region's inverted latent onto its target region while denoising."
    params = (
        FloatParam("start_t", 0.5, 0.1, 1.0, help="Fraction of the schedule inverted (official code: 0.5)."),
        FloatParam("end_t", 0.2, 0.0, 1.0, help="Copying stops below this fraction (official code: 0.2)."),
        FloatParam(
            "noise_scale", 1.0, 0.0, 1.6, step=0.2, help="Noise put into the handle regions (official: 1.0, UI 0.6)."
        ),
        ChoiceParam(
            "inversion",
            "sde",
            ("sde", "ddim"),
            help="sde: cycle-SDE with recorded noise (official 'Encode then CP'); ddim: deterministic DDIM.",
        ),
    )
    requires = (IMAGE,)
    optional = (DRAGS, REGIONS, MASK, PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        level = fraction_steps(steps, params["start_t"])  # [source, target] a step, no CFG
        return 2.0 * level + (level if params["inversion"] == "ddim" else 0)  # the cycle-SDE needs no UNet

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. check inputs: region pairs (or point drags made into squares), the mask on the latent grid
        backbone, image = ctx.backbone, inputs.image
        pairs, made_from = region_pairs(inputs)
        factor = backbone.vae_scale_factor
        grid = (image.height // factor, image.width // factor)
        editable = editable_cells(inputs.mask, grid, backbone.device)
        maps = [tuple(i.to(backbone.device) for i in region_cells(pair, factor, grid)) for pair in pairs]

        # 2. invert to start_t, keeping every level's latent
        steps = max(1, inputs.steps)
        level = max(1, round(params["start_t"] * steps))
        last_copy = max(1, round(params["end_t"] * steps))  # copy before the steps at index >= last_copy
        scheduler, schedule = sampling_schedule(backbone, steps, level)
        sde = CycleSDE.on(backbone, steps, level) if params["inversion"] == "sde" else None
        if sde is not None:
            cond, _ = encode_prompt(backbone, inputs.prompt)
            trajectory = sde.forward(encode_image(backbone, image), ctx.generator)
        else:
            inversion = invert_image(backbone, image, inputs.prompt, steps, 1.0, stop_at=level)
            cond, trajectory = inversion.prompt_embeds, list(inversion.trajectory)
        ctx.report(0, level)

        # 3. noise the handle regions of x_{start}
        latents = trajectory[level].clone()
        keep = max(0.0, 1 - params["noise_scale"] ** 2) ** 0.5
        for pair in pairs:
            r0, c0, r1, c1 = box_cells(pair.handle, factor, grid)
            window = latents[..., r0:r1, c0:c1]
            noise = randn_tensor(window.shape, generator=ctx.generator, device=window.device)
            latents[..., r0:r1, c0:c1] = keep * window + params["noise_scale"] * noise

        # 4. denoise: copy the inverted handle regions onto the targets, keep outside the mask, K/V from the source
        copies = 0
        every_layer = MutualSelfAttention(level, 0.0, 0)  # from the first step on, in every self-attention layer
        with torch.no_grad(), controlled(backbone.unet, every_layer):
            for j, (index, t) in enumerate(schedule):
                if index >= last_copy:
                    latents = copy_regions(latents, trajectory[index], maps)
                    copies += 1
                if editable is not None:
                    latents = torch.where(editable > 0, latents, trajectory[index])
                batch = torch.cat([trajectory[index], latents])  # [source, target]
                source_eps, eps = predict_noise(backbone, batch, t, cond.expand(2, -1, -1)).chunk(2)
                if sde is not None:
                    latents = sde.step(index, latents, eps, trajectory, source_eps)
                else:
                    latents = scheduler.step(eps, t, latents).prev_sample
                ctx.report(j + 1, level)
        if editable is not None:
            latents = torch.where(editable > 0, latents, trajectory[0])

        # 5. decode; the regions as an extra picture
        output = decode_latents(backbone, latents)
        info = {"regions_from": made_from, "pairs": len(pairs), "steps": level, "copy_steps": copies}
        return MethodOutput(output, info=info, extras=[(draw_regions(output, pairs, inputs.mask), "moved regions")])


def region_pairs(inputs: EditInputs) -> tuple[list[RegionPair], str]:
    """The checked region pairs and where they came from: the REGIONS slot, else squares around the drag points."""
    size = inputs.image.size
    if inputs[REGIONS]:
        return validated_regions(inputs[REGIONS], size), "region pairs"
    if inputs.drags:
        return validated_regions(regions_from_drags(validated_drags(inputs.drags, size), size), size), "drag points"
    raise InputError("Add at least one handle region → target region pair, or drag points to make square regions from.")


def copy_regions(latents: torch.Tensor, source: torch.Tensor, maps: list[tuple[torch.Tensor, ...]]) -> torch.Tensor:
    """``latents`` with every target region set to the mapped handle region of ``source`` (a new tensor)."""
    out = latents.clone()
    for source_rows, source_cols, target_rows, target_cols in maps:
        out[..., target_rows, target_cols] = source[..., source_rows, source_cols]
    return out
