"""Deterministic DDIM (Song et al., 2021) on the shared UNet, both ways: :func:`ddim_invert` maps a clean latent
to a noise latent step by step, :func:`ddim_sample` denoises it again, :func:`sampling_schedule` names the
sampling steps by the trajectory index they start from (conventions: ``methods.core.inversion``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from methods.core.latents import predict_noise

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

Progress = Callable[[int, int], None]  # (steps done, total)
StepHook = Callable[[int, torch.Tensor], torch.Tensor]  # (trajectory index reached, latents) -> latents


@torch.no_grad()
def ddim_invert(
    backbone: Backbone,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    num_steps: int,
    guidance: float = 1.0,
    stop_at: int | None = None,
    *,
    negative_embeds: torch.Tensor | None = None,
    on_step: Progress | None = None,
) -> list[torch.Tensor]:
    """DDIM-invert ``latents``: the trajectory [x_0, x_1, ..., x_k] with k = ``stop_at`` or ``num_steps``."""
    from diffusers import DDIMInverseScheduler

    scheduler = DDIMInverseScheduler.from_config(backbone.scheduler.config)
    scheduler.set_timesteps(num_steps, device=backbone.device)
    stop = num_steps if stop_at is None else max(0, min(int(stop_at), num_steps))
    trajectory = [latents.float()]
    for i, t in enumerate(scheduler.timesteps[:stop]):
        noise = predict_noise(backbone, trajectory[-1], t, prompt_embeds, guidance, negative_embeds)
        trajectory.append(scheduler.step(noise, t, trajectory[-1]).prev_sample)
        if on_step is not None:
            on_step(i + 1, stop)
    return trajectory


@torch.no_grad()
def ddim_sample(
    backbone: Backbone,
    x_t: torch.Tensor,
    prompt_embeds: torch.Tensor,
    num_steps: int,
    start_index: int,
    guidance: float = 1.0,
    *,
    negative_embeds: torch.Tensor | None = None,
    step_hook: StepHook | None = None,
    on_step: Progress | None = None,
) -> torch.Tensor:
    """Deterministic DDIM from ``x_t`` = trajectory[start_index] down to index 0; returns the clean latent.

    ``step_hook(i, latents)`` runs after each step with the trajectory index ``i`` just reached and returns
    the latents to continue with (latent blending, attention-map bookkeeping...).
    """
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(backbone.scheduler.config)
    scheduler.set_timesteps(num_steps, device=backbone.device)
    latents = x_t.float()
    timesteps = scheduler.timesteps[num_steps - start_index :]
    for j, t in enumerate(timesteps):
        noise = predict_noise(backbone, latents, t, prompt_embeds, guidance, negative_embeds)
        latents = scheduler.step(noise, t, latents).prev_sample
        if step_hook is not None:
            latents = step_hook(start_index - j - 1, latents)
        if on_step is not None:
            on_step(j + 1, len(timesteps))
    return latents


def sampling_schedule(
    backbone: Backbone, num_steps: int, start_index: int | None = None
) -> tuple[Any, list[tuple[int, torch.Tensor]]]:
    """A fresh DDIM scheduler for ``num_steps`` and the (index, timestep) pairs of the sampling steps from
    level ``start_index`` (default ``num_steps``) down to 0: the step at index i goes from level i to i - 1."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(backbone.scheduler.config)
    scheduler.set_timesteps(num_steps, device=backbone.device)
    start = num_steps if start_index is None else int(start_index)
    timesteps = scheduler.timesteps[num_steps - start :]
    return scheduler, [(start - j, t) for j, t in enumerate(timesteps)]
