"""DragDiffusion: Harnessing Diffusion Models for Interactive Point-based Image Editing (Shi et al., 2024).

https://arxiv.org/abs/2306.14435 (CVPR 2024) — DDIM-invert the photo to step t (35 of 50 in the paper) and optimise
that one latent z_t. Each iteration takes the UNet's decoder features F on z_t (output of the last upsampling
decoder block, bilinearly upsampled to half the image resolution, as in the official code) and applies *motion
supervision*: for each handle h_i, target g_i and d_i = (g_i - h_i)/||g_i - h_i||, sum_q ||F(q + d_i) - sg(F(q))||_1
over a (2 r1 + 1)^2 patch around h_i (bilinear sampling at sub-pixel positions, channel mean as in the official
code) pulls the content one step towards g_i, plus lambda ||(z_{t-1} - sg(z_{t-1}^0)) * (1 - M)||_1 on the one-step
DDIM prediction to keep the area outside the mask M. *Point tracking* then moves each handle to the nearest
neighbour, within r2, of the original handle's feature F0(h_i^0); points within 2 feature px of their target stop.
Finally z_t is denoised with DDIM, blending the inversion latents of the same step in outside the mask.
The paper's LoRA fine-tuning on the photo is the separate entry ``drag_diffusion_lora`` (test-time
fine-tuning); omitted in both: its reference-latent control (self-attention to the source). Guidance is 1
throughout, as in the paper; the tab's guidance scale is unused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from methods.core.costs import GRADIENT_STEP, fraction_steps
from methods.core.ddim import ddim_sample
from methods.core.drag import DecoderFeatures, motion_losses, track_points
from methods.core.drag_regions import editable_cells, validated_drags
from methods.core.half import LossScaler, master
from methods.core.images import draw_drags
from methods.core.inversion import invert_image
from methods.core.latents import decode_latents
from methods.core.limits import MAX_DRAG_POINT_ITERATIONS
from methods.core.registry import register
from methods.core.slots import DRAGS, IMAGE, MASK, PROMPT
from methods.core.spec import (
    Condition,
    Drag,
    EditInputs,
    FloatParam,
    InputError,
    IntParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)

REACHED = 2.0  # feature pixels (half-resolution grid): the official code's "handle reached target" radius
# The motion loss is an L1 over a few patches, not a mean over the latent: its gradients are O(1) (the largest
# activation gradient in the tiny UNet's backward is ~0.9, so float16 at the usual 2^16 overflows). Start lower;
# methods.core.half still halves the scale on an overflow.
LOSS_SCALE = 2.0**12


@dataclass(frozen=True)
class DragProblem:
    """Handles and targets as (row, col) on the feature ``grid``; ``editable`` = M on the latent grid or None."""

    handles: torch.Tensor
    targets: torch.Tensor
    editable: torch.Tensor | None
    grid: tuple[int, int]


@register
class DragDiffusion(Method):
    name = "drag_diffusion"
    label = "DragDiffusion"
    condition = Condition.DRAG
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "DragDiffusion: Harnessing Diffusion Models for Interactive Point-based Image Editing",
        2024,
        "https://arxiv.org/abs/2306.14435",
    )
    summary = "Invert the photo, optimise one noisy latent so decoder features follow the drags, denoise."
    params = (
        FloatParam("inversion_strength", 0.7, 0.1, 1.0, help="Fraction of the DDIM steps inverted (paper: 0.7)."),
        IntParam("iterations", 40, 1, 200, help="Motion-supervision + point-tracking rounds (paper: 80)."),
        FloatParam("learning_rate", 0.01, 0.001, 0.1, step=0.001, help="Adam step size on the latent (paper: 0.01)."),
        IntParam("patch_radius", 1, 0, 4, help="r1: motion-supervision patch half-size (feature px = 2 image px)."),
        IntParam("search_radius", 3, 1, 8, help="r2: point-tracking search half-size, in feature px."),
        FloatParam("mask_weight", 0.1, 0.0, 10.0, help="lambda: keeps the latent outside the mask (paper: 0.1)."),
    )
    requires = (IMAGE, DRAGS)
    optional = (PROMPT, MASK)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        level = fraction_steps(steps, params["inversion_strength"])
        # invert to the level, optimise z_t (forward + backward per iteration, one last measure), denoise
        return level + GRADIENT_STEP * params["iterations"] + 1 + level

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone, image = ctx.backbone, inputs.image
        handles_px, targets_px = drag_points(inputs.drags, image.size)
        check_work(inputs, params)
        steps = max(1, inputs.steps)
        level = max(1, round(params["inversion_strength"] * steps))
        total = planned_steps(inputs, params)

        factor = backbone.vae_scale_factor
        editable = editable_cells(inputs.mask, (image.height // factor, image.width // factor), backbone.device)

        # 1. invert the photo (guidance 1) to the chosen level
        inversion = invert_image(
            backbone, image, inputs.prompt, steps, 1.0, stop_at=level, on_step=lambda i, n: ctx.report(i, total)
        )
        trajectory, embeds = inversion.trajectory, inversion.prompt_embeds

        # 2. optimise z_t (motion supervision + point tracking) on the half-resolution feature grid
        grid = (image.height // 2, image.width // 2)
        scale = torch.tensor([grid[0] / image.height, grid[1] / image.width])
        handles = (handles_px * scale).round().clamp(min=torch.zeros(2), max=torch.tensor(grid) - 1)
        problem = DragProblem(handles, targets_px * scale, editable, grid)
        z_t, report = optimise_latent(backbone, trajectory[level], embeds, level, steps, problem, params, ctx, total)

        # 3. denoise; outside the mask take the inversion latent of the same step
        def keep_outside(index: int, latents: torch.Tensor) -> torch.Tensor:
            return editable * latents + (1 - editable) * trajectory[index]

        done = level + params["iterations"]
        blend = keep_outside if editable is not None else None
        latents = ddim_sample(
            backbone, z_t, embeds, steps, level, 1.0, step_hook=blend, on_step=lambda i, n: ctx.report(done + i, total)
        )
        output = decode_latents(backbone, latents)

        tracked_px = report.pop("handles") / scale
        report.pop("history")
        report["distance_before_px"] = round(float((handles_px - targets_px).norm(dim=1).mean()), 2)
        report["distance_after_px"] = round(float((tracked_px - targets_px).norm(dim=1).mean()), 2)
        moved = [
            Drag((round(c), round(r)), d.target) for (r, c), d in zip(tracked_px.tolist(), inputs.drags, strict=True)
        ]
        return MethodOutput(output, info=report, extras=[(draw_drags(output, moved, inputs.mask), "tracked handles")])


def check_work(inputs: EditInputs, params: dict[str, Any]) -> None:
    """Refuse more pair-iterations than one request may ask for (each iteration is a UNet forward + backward)."""
    if params["iterations"] * len(inputs.drags) > MAX_DRAG_POINT_ITERATIONS:
        raise InputError(
            f"{len(inputs.drags)} drag pairs × {params['iterations']} iterations is more than one request may "
            f"ask for (at most {MAX_DRAG_POINT_ITERATIONS} pair-iterations); use fewer pairs or iterations."
        )


def planned_steps(inputs: EditInputs, params: dict[str, Any]) -> int:
    """The progress steps of one run: inversion, latent optimisation, denoising."""
    level = max(1, round(params["inversion_strength"] * max(1, inputs.steps)))
    return 2 * level + params["iterations"]


def optimise_latent(
    backbone: Any,
    z_init: torch.Tensor,
    embeds: torch.Tensor,
    level: int,
    steps: int,
    problem: DragProblem,
    params: dict[str, Any],
    ctx: RunContext | None = None,
    total: int = 0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """DragDiffusion's latent optimisation of z_t = ``z_init`` (trajectory index ``level`` of ``steps``).

    Only the latent gets gradients (a float32 master copy, autocast off); the shared UNet stays frozen and runs
    in its own dtype (in float16 the loss is scaled, see ``methods.core.half``), and its hook is removed on every
    exit. Returns the latent and a report (losses, iterations used, the tracked handles).
    """
    unet = backbone.unet
    scheduler = DDIMScheduler.from_config(backbone.scheduler.config)
    scheduler.set_timesteps(steps, device=backbone.device)
    t = scheduler.timesteps[steps - level]
    handles, targets = problem.handles.to(backbone.device), problem.targets.to(backbone.device)
    editable, grid = problem.editable, problem.grid
    hook = DecoderFeatures(unet.up_blocks[-2] if len(unet.up_blocks) > 1 else unet.up_blocks[-1])

    def forward(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder features on the grid (float32) and the one-step DDIM prediction z_{t-1}."""
        eps = unet(z.to(unet.dtype), t, encoder_hidden_states=embeds).sample.float()
        features = F.interpolate(hook.value.float(), size=grid, mode="bilinear", align_corners=False)
        return features, scheduler.step(eps, t, z).prev_sample

    z = master(z_init)
    optimizer = torch.optim.Adam([z], lr=params["learning_rate"])
    scaler = LossScaler(unet.dtype, LOSS_SCALE)
    r1, r2, lam = params["patch_radius"], params["search_radius"], params["mask_weight"]
    losses: list[float] = []  # motion-supervision loss at the tracked handles, per iteration
    stepped: list[tuple[float, float]] = []  # that loss before / after one Adam step, at the same handles
    pending: tuple[float, torch.Tensor] | None = None  # (loss before the last step, the points it moved)
    used = 0
    try:
        with torch.autocast(backbone.device.type, enabled=False):
            for iteration in range(params["iterations"] + 1):
                with torch.set_grad_enabled(iteration < params["iterations"]):  # the last pass only measures
                    features, prev = forward(z)
                    if iteration == 0:
                        prev0 = prev.detach()
                        rows, cols = handles.long().unbind(dim=1)
                        reference = features[0, :, rows, cols].T.detach()  # F0(h_i^0): (points, channels)
                    if pending is not None:  # measure the last step where it was taken, then track
                        after = motion_losses(features.detach(), handles, targets, r1)[pending[1]].sum()
                        stepped.append((pending[0], float(after)))
                        handles = track_points(features, reference, handles, r2)
                    moving = (targets - handles).norm(dim=1) >= REACHED
                    per_point = motion_losses(features, handles, targets, r1)
                    losses.append(float(per_point.detach().sum()))
                    if iteration == params["iterations"] or not moving.any():
                        break
                    loss = per_point[moving].sum()
                    pending = (float(loss.detach()), moving)
                    if editable is not None and lam > 0:
                        loss = loss + lam * ((prev - prev0) * (1 - editable)).abs().sum()
                optimizer.zero_grad(set_to_none=True)
                scaler.backward(loss)
                scaler.step(optimizer)
                used += 1
                if ctx is not None:
                    ctx.report(level + used, total)
    finally:
        hook.remove()
    report = {
        "loss_initial": round(losses[0], 4),
        "loss_final": round(losses[-1], 4),
        "iterations_used": used,
        "steps_lowering_loss": f"{sum(after < before for before, after in stepped)}/{len(stepped)}",
        "handles": handles.cpu(),
        "history": {"losses": losses, "steps": stepped},
        **scaler.report(),
    }
    return z.detach(), report


def drag_points(drags: list[Drag], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Handles and targets as (row, col) float tensors in pixels; InputError for unusable drags."""
    drags = validated_drags(drags, size)
    handles = torch.tensor([(d.handle[1], d.handle[0]) for d in drags], dtype=torch.float32)
    targets = torch.tensor([(d.target[1], d.target[0]) for d in drags], dtype=torch.float32)
    return handles, targets
