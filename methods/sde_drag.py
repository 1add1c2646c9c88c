"""SDE-Drag: The Blessing of Randomness: SDE Beats ODE in General Diffusion-based Image Editing (Nie et al., 2024).

https://arxiv.org/abs/2311.01410 (ICLR 2024; official code github.com/ML-GSAI/SDE-Drag). The drag is cut into
moves of about ``step_size`` latent cells (the number of moves follows the official rounding). Each move noises the
current latent to t0 with the cycle-SDE forward pass (fresh Gaussian noise per step, no UNet, whole trajectory
kept; ``methods.core.drag_regions``), copies the (2r)^2 latent patch around every handle onto its current target
(times alpha = 1.1, "enhancing the signal"), refills the source patch with beta x + sqrt(1 - beta^2) n, and
denoises stochastically back to level 0 with the noise recorded in the forward pass (the UNet runs on the current
and the recorded latent in one batch; its eps on the recorded one gives the noise). Guidance rises linearly from
1 (least noisy step) to ``guidance`` at t0; outside the mask each step takes the recorded latent of its level, so
the result's latent outside the mask is the photo's exactly. The ramp's top is the method's own ``guidance``
parameter (the paper's 3); the tab's guidance scale is unused.
Changes: no LoRA fine-tuning on the photo (training-free variant; the official code trains one for 100 steps and
lowers its scale from 1 to 0.5); DDIM levels of the tab's step count instead of a 200-step DDPM discretisation;
patch windows may reach the last latent row/column (the official bound stops one short); the number of moves is
capped by ``max_moves`` (the step grows instead) so a long drag cannot hold the shared GPU without bound; the
photo's latent is the VAE mean (the official code samples it); without a mask the whole image may change.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

from methods.core.costs import TYPICAL_DRAG_CELLS, fraction_steps
from methods.core.ddim import Progress
from methods.core.drag_regions import CycleSDE, editable_cells, validated_drags
from methods.core.images import draw_drags
from methods.core.latents import decode_latents, encode_image, encode_prompt, predict_noise
from methods.core.registry import register
from methods.core.slots import DRAGS, IMAGE, MASK, PROMPT
from methods.core.spec import (
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

Cells = list[tuple[int, int]]  # (col, row) per drag, latent cells


@register
class SDEDrag(Method):
    name = "sde_drag"
    label = "SDE-Drag"
    condition = Condition.DRAG
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "The Blessing of Randomness: SDE Beats ODE in General Diffusion-based Image Editing",
        2024,
        "https://arxiv.org/abs/2311.01410",
    )
    summary = "Noise with a recorded SDE, copy the handle patch to the target in small moves, denoise with that noise."
    params = (
        FloatParam("t0", 0.6, 0.1, 1.0, help="Fraction of the schedule noised before each paste (paper: 0.6)."),
        FloatParam("guidance", 3.0, 1.0, 10.0, step=0.5, help="CFG at t0, linear down to 1 (paper: 3)."),
        FloatParam("step_size", 2.0, 0.5, 16.0, step=0.5, help="Latent cells moved per paste (paper: 2)."),
        IntParam("patch_radius", 5, 1, 16, help="r: half side of the copied square in latent cells (paper: 5)."),
        FloatParam("alpha", 1.1, 0.5, 2.0, help="Scale of the pasted patch (paper: 1.1)."),
        FloatParam("beta", 0.3, 0.0, 1.0, help="Share of the source patch kept when it is refilled (paper: 0.3)."),
        IntParam("max_moves", 24, 1, 64, help="At most this many pastes; a longer drag takes larger steps."),
    )
    requires = (IMAGE, DRAGS)
    optional = (PROMPT, MASK)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        moves = min(params["max_moves"], max(1, round(TYPICAL_DRAG_CELLS / params["step_size"])))
        return 4.0 * moves * fraction_steps(steps, params["t0"])  # per move: [current, recorded] x CFG a step

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. check inputs; points and the mask on the latent grid
        backbone, image = ctx.backbone, inputs.image
        drags = validated_drags(inputs.drags, image.size)
        factor = backbone.vae_scale_factor
        grid = (image.height // factor, image.width // factor)
        editable = editable_cells(inputs.mask, grid, backbone.device)
        handles = [(d.handle[0] // factor, d.handle[1] // factor) for d in drags]
        targets = [(d.target[0] // factor, d.target[1] // factor) for d in drags]
        moves = count_moves(handles, targets, params["step_size"], params["max_moves"])

        # 2. encode; the cycle-SDE from level 0 to t0
        steps = max(1, inputs.steps)
        level = max(1, round(params["t0"] * steps))
        sde = CycleSDE.on(backbone, steps, level)
        cond, uncond = encode_prompt(backbone, inputs.prompt)
        latents = encode_image(backbone, image)

        # 3. one noise → paste → denoise round per move
        total, done = moves * level, 0
        for move in range(moves):
            starts, ends = waypoint(handles, targets, move, moves), waypoint(handles, targets, move + 1, moves)
            trajectory = sde.forward(latents, ctx.generator)
            pasted = copy_and_paste(trajectory[-1], starts, ends, params, ctx.generator)

            def progress(i: int, n: int, before: int = done) -> None:
                ctx.report(before + i, total)

            latents = cycle_sde_denoise(
                backbone, sde, pasted, trajectory, (cond, uncond), params["guidance"], editable, progress
            )
            done += level

        # 4. decode; the moved points as an extra picture
        output = decode_latents(backbone, latents)
        info = {"moves": moves, "t0_steps": level, "unet_calls": moves * level}
        return MethodOutput(output, info=info, extras=[(draw_drags(output, drags, inputs.mask), "moved points")])


def count_moves(handles: Cells, targets: Cells, step_size: float, cap: int) -> int:
    """The official rule: n = floor(d / step), or n + 1 when d / (n + 1) is closer to the step (d = the longest
    drag in latent cells); 1 for drags within one step; at most ``cap``."""
    longest = max(math.dist(h, t) for h, t in zip(handles, targets, strict=True))
    if longest <= step_size:
        return 1
    moves = int(longest // step_size)
    if abs(longest / moves - step_size) > abs(longest / (moves + 1) - step_size):
        moves += 1
    return max(1, min(cap, moves))


def waypoint(handles: Cells, targets: Cells, move: int, moves: int) -> Cells:
    """Where each drag stands after ``move`` of ``moves`` moves: handle + trunc(move / moves * (target - handle))."""
    return [
        (hx + int(move / moves * (tx - hx)), hy + int(move / moves * (ty - hy)))
        for (hx, hy), (tx, ty) in zip(handles, targets, strict=True)
    ]


def patch_windows(start: tuple[int, int], end: tuple[int, int], radius: int, grid: tuple[int, int]) -> tuple:
    """(source, target) windows as (row slice, col slice): the square of half side ``radius`` around each point,
    shrunk on each side so that both squares fit the grid and keep the same shape."""
    (sx, sy), (tx, ty) = start, end
    left, right = min(radius, sx, tx), min(radius, grid[1] - sx, grid[1] - tx)
    up, down = min(radius, sy, ty), min(radius, grid[0] - sy, grid[0] - ty)
    source = (slice(sy - up, sy + down), slice(sx - left, sx + right))
    target = (slice(ty - up, ty + down), slice(tx - left, tx + right))
    return source, target


def copy_and_paste(
    latents: torch.Tensor, starts: Cells, ends: Cells, params: dict[str, Any], generator: torch.Generator
) -> torch.Tensor:
    """x_{t0} with, per drag in turn, the source patch refilled (beta x + sqrt(1 - beta^2) n) and alpha x the source
    patch pasted at the target (a new tensor; the input is kept)."""
    out, beta = latents.clone(), params["beta"]
    for start, end in zip(starts, ends, strict=True):
        (sr, sc), (tr, tc) = patch_windows(start, end, params["patch_radius"], tuple(out.shape[-2:]))
        patch = out[..., sr, sc].clone()
        noise = randn_tensor(patch.shape, generator=generator, device=patch.device)
        out[..., sr, sc] = beta * patch + (1 - beta**2) ** 0.5 * noise
        out[..., tr, tc] = params["alpha"] * patch
    return out


@torch.no_grad()
def cycle_sde_denoise(
    backbone: Any,
    sde: CycleSDE,
    latents: torch.Tensor,
    trajectory: list[torch.Tensor],
    embeds: tuple[torch.Tensor, torch.Tensor],
    guidance: float,
    editable: torch.Tensor | None = None,
    on_step: Progress | None = None,
) -> torch.Tensor:
    """Cycle-SDE sampling from level ``sde.levels`` to 0 with the noise recorded in ``trajectory``; guidance
    1 + (guidance - 1) i / levels at the step at index i; outside ``editable`` each level's recorded latent."""
    cond, uncond = embeds
    levels = sde.levels
    for j, index in enumerate(range(levels, 0, -1)):
        scale = 1.0 + (guidance - 1.0) * index / levels
        batch = torch.cat([latents, trajectory[index]])  # [current, recorded]
        eps, recorded_eps = predict_noise(
            backbone, batch, sde.timesteps[index], cond.expand(2, -1, -1), scale, uncond.expand(2, -1, -1)
        ).chunk(2)
        latents = sde.step(index, latents, eps, trajectory, recorded_eps)
        if editable is not None:
            latents = torch.where(editable > 0, latents, trajectory[index - 1])
        if on_step is not None:
            on_step(j + 1, levels)
    return latents
