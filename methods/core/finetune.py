"""Test-time fine-tuning on one photo, shared by the methods that adapt the model to it (Imagic, DragDiffusion's
LoRA step): the photo's denoising objective, an Adam loop over float32 masters with loss scaling, and a LoRA
adapter on the shared UNet's attention projections (diffusers' ``unet.add_adapter`` over peft), which the
runner's ``borrowed()`` deletes afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from methods.core.half import LossScaler, make_master

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass
class Reconstruction:
    """The denoising objective on one photo's latent: ||target - UNet(x_t, t, e)||^2 in float32 (target eps,
    or v for v-prediction models), averaged over ``count`` timesteps drawn stratified from [0, T)."""

    unet: Any
    latents: torch.Tensor
    scheduler: Any
    generator: torch.Generator
    count: int
    probes: tuple[torch.Tensor, torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.probes = self.draw(8)  # fixed (t, noise) pairs to compare the loss before and after a stage

    def draw(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        span, device = self.scheduler.config.num_train_timesteps, self.latents.device
        jitter = torch.rand(count, generator=self.generator, device=self.generator.device).cpu()
        t = ((torch.arange(count) + jitter) * span / count).long().clamp(max=span - 1)
        noise = torch.randn((count, *self.latents.shape[1:]), generator=self.generator, device=self.generator.device)
        return t.to(device), noise.to(device)

    def loss(self, embeds: torch.Tensor, draw: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        t, noise = draw or self.draw(self.count)
        clean = self.latents.expand(len(t), -1, -1, -1)
        noisy = self.scheduler.add_noise(clean, noise, t)
        v_model = self.scheduler.config.prediction_type == "v_prediction"
        target = self.scheduler.get_velocity(clean, noise, t) if v_model else noise
        unet = self.unet
        context = embeds.to(unet.dtype).expand(len(t), -1, -1)
        prediction = unet(noisy.to(unet.dtype), t, encoder_hidden_states=context).sample
        return F.mse_loss(prediction.float(), target.float())

    @torch.no_grad()
    def probe_loss(self, embeds: torch.Tensor) -> float:
        return float(self.loss(embeds, self.probes))


def optimise(
    objective: Reconstruction,
    parameters: list[torch.Tensor],
    embeds: Callable[[], torch.Tensor],
    steps: int,
    lr: float,
    on_step: Callable[[int], None],
    scaler: LossScaler,
) -> list[float]:
    """Adam on ``parameters`` (float32 masters) with the photo's denoising loss, scaled by ``scaler`` in float16;
    returns the loss of every step (a skipped step's included)."""
    losses: list[float] = []
    if steps == 0:
        return losses
    optimizer = torch.optim.Adam(parameters, lr=lr)
    with torch.enable_grad(), torch.autocast(objective.latents.device.type, enabled=False):
        for step in range(steps):
            loss = objective.loss(embeds())
            optimizer.zero_grad(set_to_none=True)
            scaler.backward(loss)
            scaler.step(optimizer)
            losses.append(float(loss.detach()))
            on_step(step + 1)
    return losses


def loss_trend(losses: list[float], window: int = 5) -> str:
    """'first -> last' with each end averaged over ``window`` steps (each step draws its own t and noise)."""
    if not losses:
        return "skipped"
    k = max(1, min(window, len(losses) // 2))
    return f"{sum(losses[:k]) / k:.4f} -> {sum(losses[-k:]) / k:.4f}"


@contextmanager
def lora_adapter(unet: Any, rank: int, adapter: str) -> Iterator[list[torch.nn.Parameter]]:
    """A float32 LoRA on the shared UNet's attention projections, trainable, for the block (float32 masters on a
    half-precision UNet: peft casts the layer input to the LoRA's dtype and the sum back to the UNet's).

    The adapter is shared state: the runner's ``borrowed()`` deletes it and swaps the original Linear modules
    (the same parameter objects) back in, so the module tree, weights, flags and processors are as before.
    """
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    unet.add_adapter(config, adapter_name=adapter)
    yield make_master(p for n, p in unet.named_parameters() if f".{adapter}." in n)
