"""Null-text Inversion (Mokady et al., CVPR 2023, https://arxiv.org/abs/2211.09794): per sampling step, the
unconditional embedding whose guided DDIM step lands on the guidance-1 pivot (see ``methods.core.inversion``
for the schedule, the learning rate and the early stop)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from methods.core.ddim import Progress, sampling_schedule
from methods.core.half import FP16_LOSS_SCALE, LossScaler, master

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

# Null-text's MSE is ~1e-5..1e-3 on SD latents: through a float16 UNet its gradients underflow unless the loss
# is scaled (methods.core.half); the initial scale is looked up here at each call (a test lowers it).


@dataclass(frozen=True)
class NullTextOptions:
    """Null-text inversion's optimisation settings (paper: 10 inner steps, lr 1e-2, epsilon 1e-5)."""

    inner_steps: int = 10
    learning_rate: float = 1e-2
    epsilon: float = 1e-5
    early_stop: bool = True

    def threshold(self, j: int, num_steps: int) -> float:
        """Early-stop MSE at sampling step ``j`` (0 = noisiest): the paper's epsilon + 2e-5 * i over 50 steps."""
        return self.epsilon + 2e-5 * j * 50 / num_steps if self.early_stop else -math.inf


def _guided_step(
    scheduler: Any, t: torch.Tensor, latents: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, guidance: float
) -> torch.Tensor:
    return scheduler.step(uncond + guidance * (cond - uncond), t, latents).prev_sample


@torch.inference_mode(False)  # a caller inside torch.inference_mode() still gets its gradients
@torch.no_grad()
def null_text_optimise(
    backbone: Backbone,
    trajectory: tuple[torch.Tensor, ...],
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor,
    num_steps: int,
    guidance: float,
    options: NullTextOptions | None = None,
    on_step: Progress | None = None,
) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """Null-text inversion: per sampling step, the unconditional embedding whose guided DDIM step from the
    current latent lands on the pivot ``trajectory`` (float32; see the module docstring).

    Returns the embeddings by level (``[i - 1]`` for the step at index i) and a report with, per sampling
    step in sampling order (noisiest first): ``iterations`` (Adam steps taken), ``initial_loss`` and
    ``final_loss`` (MSE to the pivot before optimising and of the step actually taken), ``losses`` (the MSE
    at each evaluation) and ``skipped`` (fp16 updates dropped for non-finite gradients).
    """
    options = options or NullTextOptions()
    unet = backbone.unet
    dtype = unet.dtype
    scaler = LossScaler(dtype, FP16_LOSS_SCALE)  # one scale for the whole run, as before
    scheduler, steps = sampling_schedule(backbone, num_steps, len(trajectory) - 1)
    cond = prompt_embeds.to(dtype).clone()  # clones: inference-mode tensors cannot be saved for backward
    null = negative_embeds.detach().float().clone()
    nulls: list[torch.Tensor] = [null] * (len(trajectory) - 1)
    report: dict[str, list[Any]] = {"iterations": [], "initial_loss": [], "final_loss": [], "losses": [], "skipped": []}

    def uncond_noise(latents: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        return unet(latents.to(dtype), t, encoder_hidden_states=embeds.to(dtype)).sample.float()

    inner = options.inner_steps if guidance != 1.0 else 0  # at guidance 1 the embedding has no effect
    latents = trajectory[-1].float().clone()
    for j, (index, t) in enumerate(steps):
        target = trajectory[index - 1].clone()
        noise_cond = unet(latents.to(dtype), t, encoder_hidden_states=cond).sample.float()

        null = master(null)
        optimizer = torch.optim.Adam([null], lr=options.learning_rate * (1 - j / (2 * num_steps)))
        threshold = options.threshold(j, num_steps)
        iterations, skipped, initial, fresh, trace = 0, 0, None, None, []
        for _ in range(inner):
            with torch.enable_grad():
                noise_uncond = uncond_noise(latents, t, null)
                landed = _guided_step(scheduler, t, latents, noise_cond, noise_uncond, guidance)
                loss = torch.nn.functional.mse_loss(landed, target)
                value = float(loss.detach())
                trace.append(value)
                initial = value if initial is None else initial
                if value < threshold:
                    fresh = noise_uncond.detach()  # the embedding is final: reuse its prediction
                    break
                optimizer.zero_grad(set_to_none=True)
                scaler.backward(loss)
            if not scaler.step(optimizer):  # fp16 overflow: update skipped, scale halved
                skipped += 1
                continue
            iterations += 1
        if on_step is not None:
            on_step((j + 1) * inner, len(steps) * inner)
        null = null.detach()
        noise_uncond = fresh if fresh is not None else uncond_noise(latents, t, null)
        latents = _guided_step(scheduler, t, latents, noise_cond, noise_uncond, guidance)
        final = float(torch.nn.functional.mse_loss(latents, target))
        nulls[index - 1] = null
        report["iterations"].append(iterations)
        report["initial_loss"].append(final if initial is None else initial)
        report["final_loss"].append(final)
        report["losses"].append(trace)
        report["skipped"].append(skipped)
    return tuple(nulls), report
