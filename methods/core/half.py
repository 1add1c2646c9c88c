"""Optimising through a half-precision backbone: float32 master tensors and loss scaling for float16.

Mixed-precision training (Micikevicius et al., 2018, https://arxiv.org/abs/1710.03740), as the hub's optimising
methods need it (textual inversion, Imagic, DragDiffusion, null-text inversion). The tensors an optimizer updates
(an embedding, LoRA weights, a latent, a null embedding) are float32 *master* copies (:func:`master`,
:func:`make_master`), cast to the module's dtype only where they enter it; the loss is computed in float32.
Gradients then flow back through the float16 / bfloat16 modules and arrive in float32 on the masters. In float16
they underflow on the way: SD's denoising MSE averages over 16k latent values per image, so each output gradient
is ~1e-5..1e-4 and smaller further back (float16's normals end at 6e-5, its subnormals at 6e-8).
:class:`LossScaler` therefore multiplies the loss by S (2^16 unless a method's loss calls for less) before
``backward`` and divides the float32 gradients by S before the optimizer step, skipping a step whose gradients
overflowed (inf / NaN), halving S then and doubling it after ``growth_interval`` clean steps: that is
``torch.amp.GradScaler``, which it drives, adding the master check, a skipped step's cleared gradients and the count
of skipped steps for a method's report. bfloat16 has float32's exponent range and float32 needs nothing: there S is
1 and ``backward`` / ``step`` are the plain calls, bit for bit; a non-finite gradient still skips the step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

FP16_LOSS_SCALE = 2.0**16  # GradScaler's initial scale
GROWTH_INTERVAL = 2000  # clean steps before the scale doubles (GradScaler's default)


def master(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 leaf copy of ``tensor`` that requires grad: the master copy an optimizer updates."""
    return tensor.detach().float().clone().requires_grad_(True)


def make_master(parameters: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """Turn module parameters (a LoRA a method added on a half-precision module) into float32 trainable masters,
    in place; returns them. The module casts its input to their dtype (peft's LoRA layers do)."""
    parameters = list(parameters)
    for parameter in parameters:
        parameter.data = parameter.data.float()
        parameter.requires_grad_(True)
    return parameters


class LossScaler:
    """``backward(loss)`` then ``step(optimizer)``: the loss scaled for a float16 forward by ``torch.amp.GradScaler``
    (see the module docstring), the gradients unscaled on the float32 masters, a non-finite step skipped."""

    def __init__(
        self, dtype: torch.dtype, init_scale: float = FP16_LOSS_SCALE, growth_interval: int = GROWTH_INTERVAL
    ) -> None:
        self.enabled = dtype == torch.float16
        self._init_scale, self._growth_interval = float(init_scale), growth_interval
        self._amp: torch.amp.GradScaler | None = None  # made at the first backward, on the loss's device
        self.skipped = 0  # steps dropped for non-finite gradients

    @property
    def scale(self) -> float:
        if not self.enabled:
            return 1.0
        return self._amp.get_scale() if self._amp is not None else self._init_scale

    def backward(self, loss: torch.Tensor) -> None:
        if not self.enabled:
            loss.backward()
            return
        if self._amp is None:
            self._amp = torch.amp.GradScaler(
                loss.device.type, init_scale=self._init_scale, growth_interval=self._growth_interval
            )
        self._amp.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale the gradients and step; False (no step, gradients cleared, S halved) if any is inf / NaN."""
        parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if any(p.dtype != torch.float32 for p in parameters):
            raise TypeError("optimise float32 master copies (methods.core.half.master), not half-precision tensors")
        if self._amp is not None and parameters:
            before = self._amp.get_scale()
            self._amp.step(optimizer)
            self._amp.update()
            stepped = self._amp.get_scale() >= before  # GradScaler lowers the scale only for a skipped step
        else:
            stepped = all(bool(torch.isfinite(p.grad).all()) for p in parameters)
            if stepped:
                optimizer.step()
        if not stepped:
            optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
        return stepped

    def report(self) -> dict[str, float | int]:
        """For a method's info: the final scale and the skipped steps (empty where no scaling is done)."""
        return {"loss_scale": self.scale, "skipped_steps": self.skipped} if self.enabled else {}
