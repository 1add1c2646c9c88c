"""Gradient guidance on the predicted clean image: an objective's gradient that survives half precision.

Universal guidance (Bansal et al., 2023, https://arxiv.org/abs/2302.07121) and the hub's sound guidance push each
denoising step along the gradient of a score of the decoded x̂0 (a classifier's log-probability, an audio-image
cosine). Those gradients are tiny per pixel (~1e-6): through a float16 VAE decoder and image network they
underflow to zero or, near overflow, turn into inf and then NaN in the latents. :func:`objective_gradient`
scales the objective before the backward pass in float16 (as a GradScaler would), unscales the gradient, and
leaves a step unguided (zeros, with a warning) when the gradient is not finite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

logger = logging.getLogger(__name__)

FP16_OBJECTIVE_SCALE = 2.0**12  # scores of ~1 with gradients of ~1e-6 per latent value: 2^12 keeps them normal


def decode_pixels(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """The VAE's [-1, 1] decoding of ``latents`` in float32, differentiable (``latents.decode_latents`` is not)."""
    return vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample.float()


def processor_input(
    pixels: torch.Tensor, short_side: int, crop: int, mean: Any, std: Any, clamp: bool = False
) -> torch.Tensor:
    """An image processor's steps in torch, differentiable: [-1, 1] pixels (B, 3, H, W) -> bicubic resize of the
    short side to ``short_side``, centre ``crop`` x ``crop``, optionally clamped to [0, 1], then (x - mean) / std."""
    x = (pixels.float() + 1) / 2
    height, width = x.shape[-2:]
    scale = short_side / min(height, width)
    size = (max(short_side, round(height * scale)), max(short_side, round(width * scale)))
    x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    top, left = (x.shape[-2] - crop) // 2, (x.shape[-1] - crop) // 2
    x = x[..., top : top + crop, left : left + crop]
    if clamp:
        x = x.clamp(0, 1)
    mean = torch.as_tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.as_tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def objective_gradient(
    objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, half: bool, what: str = "guidance"
) -> tuple[float, torch.Tensor]:
    """(objective(x), d objective / d x in float32) for a scalar ``objective``; ``half``: a float16 model is on the
    path (the objective is scaled by :data:`FP16_OBJECTIVE_SCALE` for the backward pass)."""
    scale = FP16_OBJECTIVE_SCALE if half else 1.0
    with torch.enable_grad():
        x = x.detach().float().requires_grad_(True)
        value = objective(x)
        (gradient,) = torch.autograd.grad(value * scale, x)
    gradient = gradient.float() / scale
    if not torch.isfinite(gradient).all():
        logger.warning("non-finite %s gradient; this step is left unguided", what)
        gradient = torch.zeros_like(gradient)
    return float(value.detach()), gradient


def has_half(*modules: Any) -> bool:
    return any(getattr(m, "dtype", None) == torch.float16 for m in modules)
