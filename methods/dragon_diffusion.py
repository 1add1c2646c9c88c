"""DragonDiffusion: Enabling Drag-style Manipulation on Diffusion Models (Mou et al., ICLR 2024).

https://arxiv.org/abs/2307.02421 — drag mode. DDIM-invert the photo (guidance 1): its trajectory is the guidance
branch. Denoise the edited branch from the inverted noise (the handle's latent patch pasted onto the target, as
the official code does); at the guided steps (all in the first 20 % of the schedule, every other one until 60 %)
compare the features of UNet up-blocks 1 and 2 (resized to image / 4) on the edited z_t with those on the guidance
latent of the same step, in the energy E = edit + contrast + content: w_e / (1 + 4 s), s the cosine similarity
(mapped to [0, 1]) of the features at each target patch to the guidance features at its handle patch; w_c s over
the vacated handle cells; w_o / (1 + 4 s) outside the edit area. z_t moves against the gradient (the edit one
inside the edit area, the content one outside) by sqrt(1 - alpha_t) * 4e-2 * energy_scale, the official weight.
From 10 % of the steps on, decoder self-attention also attends to the keys / values the inversion computed at
that timestep (the memory bank, concatenated to the edited branch's own); from 20 % to 40 % the edit area takes a
DDIM step with eta = ``sde_strength`` (the official regional SDE). With a mask, the inversion latent of each step
is blended in outside it (as DragDiffusion does). Changed from the official code: guidance 1 and no IP-Adapter
image prompt (it samples at CFG 4 with one); without a mask the edit area is a corridor around each drag; the
update goes into z_t before its noise is predicted (the official adds it to the x_0 prediction only: the same
first-order move) and is multiplied by 50 / steps, so a short schedule gets the official total guidance; no
"time travel" repeats (the official re-noises steps 21-29 twice); the memory bank is recomputed per step from the
trajectory (the inversion's own UNet call for that timestep) instead of being stored during the inversion.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch

from methods.core.attention import controlled, steps_until
from methods.core.costs import GRADIENT_STEP
from methods.core.ddim import sampling_schedule
from methods.core.drag_regions import editable_cells
from methods.core.dragon import (
    DragRegions,
    FeatureTap,
    MemoryBank,
    drag_energy,
    drag_regions,
    guided_steps,
    keep_outside,
    paste_start,
    target_similarity,
)
from methods.core.half import LossScaler, master
from methods.core.images import draw_drags
from methods.core.inversion import invert_image
from methods.core.latents import decode_latents, predict_noise
from methods.core.registry import register
from methods.core.slots import DRAGS, IMAGE, MASK, PROMPT
from methods.core.spec import (
    BoolParam,
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
from methods.drag_diffusion import drag_points

OFFICIAL_STEPS = 50  # the official schedule the step fractions below come from
BANK_FROM = 0.1  # memory bank from sampling step 5 / 50 on
SDE_WINDOW = (0.2, 0.4)  # regional SDE at 10 < i < 20 of 50
GUIDANCE_STEP = 4e-2  # the official drag mode's factor on the energy gradient
LOSS_SCALE = 2.0**12  # float16: the energy is O(1) like DragDiffusion's patch loss (see methods.core.half)


@register
class DragonDiffusion(Method):
    name = "dragon_diffusion"
    label = "DragonDiffusion"
    condition = Condition.DRAG
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "DragonDiffusion: Enabling Drag-style Manipulation on Diffusion Models",
        2024,
        "https://arxiv.org/abs/2307.02421",
    )
    summary = "Invert, then guide denoising with a feature-matching energy and a memory bank of the photo's attention."
    params = (
        FloatParam("energy_scale", 2.0, 0.0, 10.0, step=0.1, help="Score-guidance strength x1e3 (official: 2)."),
        FloatParam("w_edit", 4.0, 0.0, 20.0, step=0.5, help="Edit term: target looks like the handle (official: 4)."),
        FloatParam("w_content", 6.0, 0.0, 20.0, step=0.5, help="Content term outside the edit area (official: 6)."),
        FloatParam("w_contrast", 0.2, 0.0, 5.0, help="Contrast term: the vacated handle changes (official: 0.2)."),
        FloatParam("guidance_until", 0.6, 0.0, 1.0, help="Fraction of the steps with energy guidance (official: 0.6)."),
        BoolParam("memory_bank", True, help="Attend to the inversion's decoder keys / values (official: on)."),
        FloatParam("sde_strength", 0.4, 0.0, 1.0, help="Regional SDE eta in the edit area, 20-40 % (official: 0.4)."),
        IntParam("patch_radius", 1, 0, 4, help="Half-size of the handle / target patches in image/4 cells (1)."),
        BoolParam("paste_start", True, help="Copy the handle's noise latent onto the target first (official: on)."),
    )
    requires = (IMAGE, DRAGS)
    optional = (MASK, PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        # inversion, denoising, the memory bank's recording calls, guided steps (guidance features, [z, z] forward
        # + backward, the measure), the final similarity; no CFG anywhere
        bank, guide = steps - steps_until(BANK_FROM, steps), 2 + 2 * GRADIENT_STEP
        return 2 * steps + bank + guide * len(guided_steps(steps, params)) + 2

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. check inputs: drags, mask -> handle / target patches and the edit area
        backbone, image = ctx.backbone, inputs.image
        handles_px, targets_px = drag_points(inputs.drags, image.size)
        factor = backbone.vae_scale_factor
        latent_size = (image.height // factor, image.width // factor)
        editable = editable_cells(inputs.mask, latent_size, backbone.device)  # the latent blend's M (None: none)
        size, radius = (image.height, image.width), params["patch_radius"]
        regions = drag_regions(handles_px, targets_px, inputs.mask, size, latent_size, radius, backbone.device)
        steps = max(1, inputs.steps)
        total = 2 * steps + 1

        # 2. invert the photo (guidance 1): the guidance branch
        inversion = invert_image(backbone, image, inputs.prompt, steps, 1.0, on_step=lambda i, n: ctx.report(i, total))

        # 3. guided denoising with the memory bank; 4. decode
        latents, report = dragon_denoise(
            backbone, inversion.trajectory, inversion.prompt_embeds, regions, params, editable, ctx, total
        )
        output = decode_latents(backbone, latents)
        extras = [(draw_drags(output, inputs.drags, inputs.mask), "moved points")]
        return MethodOutput(output, info=report, extras=extras)


def dragon_denoise(
    backbone: Any,
    trajectory: tuple[torch.Tensor, ...],
    embeds: torch.Tensor,
    regions: DragRegions,
    params: dict[str, Any],
    editable: torch.Tensor | None = None,
    ctx: RunContext | None = None,
    total: int = 0,
    on_latents: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Denoise from trajectory[-1] with DragonDiffusion's guidance; returns the clean latent and a report.

    The UNet runs frozen in its own dtype (only a float32 master copy of z_t gets gradients, the loss is scaled
    in float16), its processors are restored and the feature hooks removed on every exit. ``on_latents(i, z)``
    sees the latent after each sampling step with the trajectory index i it reached."""
    unet, steps = backbone.unet, len(trajectory) - 1
    scheduler, schedule = sampling_schedule(backbone, steps)
    guided, bank_from = guided_steps(steps, params), steps_until(BANK_FROM, steps)
    weights = (params["w_edit"], params["w_contrast"], params["w_content"])
    scaler = LossScaler(unet.dtype, LOSS_SCALE)
    bank, use_bank = MemoryBank(), params["memory_bank"]  # a bank that is not installed is never called
    area, generator = regions.area, ctx.generator if ctx is not None else None
    z = paste_start(trajectory[-1], regions) if params["paste_start"] else trajectory[-1].float()
    energies: list[tuple[int, float, float, float, float]] = []  # index, energy and similarity before / after

    def features(latents: torch.Tensor, t: torch.Tensor) -> list[torch.Tensor]:
        predict_noise(backbone, latents, t, embeds.expand(latents.shape[0], -1, -1))
        return tap.read()

    @torch.no_grad()
    def measure(latents: torch.Tensor, t: torch.Tensor, guide: list[torch.Tensor]) -> tuple[float, float]:
        current = features(latents, t)
        return float(sum(drag_energy(current, guide, regions, weights))), target_similarity(current, guide, regions)

    tap = FeatureTap(unet, regions.grid)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.autocast(backbone.device.type, enabled=False))
            if use_bank:
                stack.enter_context(controlled(unet, bank))
            for j, (index, t) in enumerate(schedule):
                if use_bank and j >= bank_from:  # the inversion's own UNet call for this timestep
                    bank.mode = "record"
                    with torch.no_grad():
                        predict_noise(backbone, trajectory[index - 1], t, embeds)
                bank.mode = "off"  # the energy compares plain features, as the official estimator UNet does
                if j in guided:
                    lr = (1 - scheduler.alphas_cumprod[int(t)]).sqrt().item() * GUIDANCE_STEP
                    lr *= params["energy_scale"] * 1e3 * OFFICIAL_STEPS / steps
                    with torch.no_grad():
                        guide = features(trajectory[index], t)
                    z, *before = guide_step(z, functools.partial(features, t=t), guide, regions, weights, lr, scaler)
                    energies.append((index, *before, *measure(z, t, guide)))
                bank.mode = "inject" if j >= bank_from else "off"
                with torch.no_grad():
                    eps = predict_noise(backbone, z, t, embeds)
                    z_next = scheduler.step(eps, t, z).prev_sample
                    if params["sde_strength"] > 0 and SDE_WINDOW[0] * steps < j < SDE_WINDOW[1] * steps:
                        noise = torch.randn(z.shape, generator=generator, device=getattr(generator, "device", "cpu"))
                        sde = scheduler.step(
                            eps, t, z, eta=params["sde_strength"], variance_noise=noise.to(z.device)
                        ).prev_sample
                        z_next = area * sde + (1 - area) * z_next
                    z = z_next if editable is None else keep_outside(z_next, trajectory[index - 1], editable)
                if on_latents is not None:
                    on_latents(index - 1, z)
                if ctx is not None:
                    ctx.report(steps + j + 1, total)
            bank.mode = "off"
            with torch.no_grad():  # how much each target now looks like its handle in the photo (last timestep)
                similarity = target_similarity(
                    features(z, schedule[-1][1]), features(trajectory[0], schedule[-1][1]), regions
                )
    finally:
        tap.remove()
    if ctx is not None:
        ctx.report(total, total)
    report = {
        "guided_steps": [e[0] for e in energies],  # trajectory indices
        "energy_steps": [[round(e[1], 4), round(e[3], 4)] for e in energies],  # before / after each update
        "similarity_steps": [[round(e[2], 4), round(e[4], 4)] for e in energies],  # target vs handle, same
        "steps_lowering_energy": f"{sum(e[3] < e[1] for e in energies)}/{len(energies)}",
        "target_similarity": round(similarity, 4),  # the final latent vs the photo, at the last timestep
        **scaler.report(),
    }
    return z, report


def guide_step(
    z: torch.Tensor,
    features: Callable[[torch.Tensor], list[torch.Tensor]],
    guide: list[torch.Tensor],
    regions: DragRegions,
    weights: tuple[float, float, float],
    lr: float,
    scaler: LossScaler,
) -> tuple[torch.Tensor, float, float]:
    """One score-guidance update of z_t (SGD step ``lr`` on a float32 master copy): the new latent, and the
    energy and target similarity of z_t before it (from the same forward).

    One backward gives the official mix (the edit gradient inside the edit area, the content one outside):
    rows [z, z] of one batch, row 0 passing gradients only inside the area into the edit term, row 1 only
    outside into the content term (for a 0/1 area each row's value is exactly z)."""
    leaf, area = master(z), regions.area
    rows = torch.cat([leaf * area + (leaf * (1 - area)).detach(), leaf * (1 - area) + (leaf * area).detach()])
    with torch.enable_grad():
        current = features(rows)
        edit, _ = drag_energy([f[:1] for f in current], guide, regions, weights)
        _, content = drag_energy([f[1:] for f in current], guide, regions, weights)
        optimizer = torch.optim.SGD([leaf], lr=lr)
        scaler.backward(edit + content)
        scaler.step(optimizer)
    similarity = target_similarity([f[:1].detach() for f in current], guide, regions)
    return leaf.detach(), float(edit.detach() + content.detach()), similarity
