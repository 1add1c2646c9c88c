"""Every optimising method on a half-precision backbone (float16 and bfloat16, tiny, CPU): its own objective falls,
its output is finite, the optimised tensors stay float32 masters (``LossScaler.step`` refuses anything else) and
the shared modules keep their dtype and state. Float16's loss scaling (methods/core/half.py) is checked by itself:
unscaled, float16 gradients of a loss at SD's magnitude drift from float32's; scaled, they match."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import methods.drag_diffusion as drag_diffusion
from methods.core.backbone import Backbone
from methods.core.half import FP16_LOSS_SCALE, LossScaler, master
from methods.core.inversion import invert, reconstruct
from methods.core.latents import decode_latents
from methods.core.runner import run_comparison
from methods.core.spec import Audio, Box, Drag, EditInputs
from tests.conftest import center_mask, make_photo, tiny_settings

SEED = 0


@pytest.fixture(scope="module", params=["float16", "bfloat16"])
def half(request: pytest.FixtureRequest) -> Backbone:
    return Backbone(dataclasses.replace(tiny_settings(), dtype=request.param))


def dtypes(backbone: Backbone) -> dict[str, set[torch.dtype]]:
    return {name: {p.dtype for p in m.parameters()} for name, m in backbone.shared_modules().items()}


@contextmanager
def restored_and_finite(backbone: Backbone) -> Iterator[None]:
    """Around a run: every VAE decode is finite, and afterwards the shared modules have their dtype and state
    back (the watching hook is removed before the comparison)."""
    before, types = backbone.state_fingerprint(), dtypes(backbone)
    finite: list[bool] = []
    handle = backbone.vae.decoder.register_forward_hook(lambda m, a, out: finite.append(bool(out.isfinite().all())))
    try:
        yield
    finally:
        handle.remove()
    assert finite and all(finite)
    assert dtypes(backbone) == types and backbone.unet.dtype == backbone.dtype
    assert backbone.state_fingerprint() == before
    assert not any(p.requires_grad or p.grad is not None for p in backbone.unet.parameters())


def run(backbone: Backbone, condition: str, name: str, inputs: EditInputs, **params: Any) -> dict[str, Any]:
    comparison = run_comparison(backbone, condition, [name], inputs, SEED, params={name: params})
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    assert np.asarray(comparison.result(name), np.float64).std() > 5  # a NaN latent decodes to one flat colour
    return record["info"]


def assert_scaling(backbone: Backbone, info: dict[str, Any], prefix: str = "", scale: float = FP16_LOSS_SCALE) -> None:
    """Float16 reports its loss scale (the initial one: never halved here) and no skipped step; bfloat16 is not
    scaled."""
    if backbone.dtype == torch.float16:
        assert info[f"{prefix}loss_scale"] == scale and info[f"{prefix}skipped_steps"] == 0, info
    else:
        assert f"{prefix}loss_scale" not in info


# -- the loss scaler ---------------------------------------------------------------------------------------
def test_scaler_unscales_skips_overflow_and_is_plain_without_float16() -> None:
    weight = torch.tensor([1.0, -2.0])
    x = master(weight)
    optimizer = torch.optim.SGD([x], lr=0.5)
    scaler = LossScaler(torch.float16, init_scale=8.0, growth_interval=2)
    scaler.backward((x**2).sum())
    assert torch.equal(x.grad, 8 * 2 * weight)  # scaled on the way back ...
    assert scaler.step(optimizer) and torch.equal(x.detach(), weight - 0.5 * 2 * weight)  # ... unscaled for SGD
    before = x.detach().clone()
    scaler.backward(x.sum() * torch.tensor(float("inf")))
    assert not scaler.step(optimizer)  # overflow: no step, gradients cleared, scale halved
    assert torch.equal(x.detach(), before) and x.grad is None
    assert scaler.report() == {"loss_scale": 4.0, "skipped_steps": 1}
    for _ in range(2):
        optimizer.zero_grad()
        scaler.backward(x.sum())
        scaler.step(optimizer)
    assert scaler.scale == 8.0  # doubled after growth_interval clean steps
    for dtype in (torch.float32, torch.bfloat16):  # the plain backward and step, nothing reported
        plain, scaled = master(weight), master(weight)
        (plain**2).sum().backward()
        LossScaler(dtype).backward((scaled**2).sum())
        assert torch.equal(plain.grad, scaled.grad) and LossScaler(dtype).report() == {}
    fp16 = torch.ones(2, dtype=torch.float16, requires_grad=True)
    fp16.sum().backward()
    with pytest.raises(TypeError, match="float32 master"):
        LossScaler(torch.float16).step(torch.optim.SGD([fp16], lr=0.1))


def test_scaled_gradients_through_the_half_unet_match_float32(half: Backbone, backbone: Backbone) -> None:
    """A loss 1e-3 x the tiny one (SD's 64x64 latents and small losses give gradients of that size): gradients
    on a float32 latent and embedding through the half UNet, against the float32 UNet's. Measured cosine: float16
    scaled 1.0000 / 1.0000, float16 unscaled 0.82 / 0.79 (36 % of the embedding gradient flushed to zero),
    bfloat16 (never scaled) 0.9999 / 0.9999."""
    generator = torch.Generator().manual_seed(0)
    z, e, target = (torch.randn(shape, generator=generator) for shape in ((1, 4, 16, 16), (1, 77, 32), (1, 4, 16, 16)))

    def gradients(bb: Backbone, scaler: LossScaler) -> list[torch.Tensor]:
        latent, embeds = master(z), master(e)
        unet = bb.unet
        out = unet(latent.to(unet.dtype), torch.tensor([500]), encoder_hidden_states=embeds.to(unet.dtype)).sample
        scaler.backward(1e-3 * F.mse_loss(out.float(), target))
        return [g / scaler.scale for g in (latent.grad, embeds.grad)]

    def cosines(scaler: LossScaler) -> list[float]:
        got = gradients(half, scaler)
        pairs = zip(reference, got, strict=True)
        return [float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0)) for a, b in pairs]

    reference = gradients(backbone, LossScaler(torch.float32))
    assert min(cosines(LossScaler(half.dtype))) > 0.999
    if half.dtype == torch.float16:
        assert max(cosines(LossScaler(torch.float16, init_scale=1.0))) < 0.95


# -- the methods (on a 64-px photo, the smallest the tiny UNet takes: float16 matmuls are slow on CPU) -----------
@pytest.fixture(scope="module")
def small() -> Image.Image:
    return make_photo(64)


def test_textual_inversion(half: Backbone, small: Image.Image) -> None:
    """The loss on 5 fixed (t, noise) pairs, 3 steps at lr 0.02: measured 1.06095 -> 1.05956 in float32,
    1.06097 -> 1.05958 in float16, 1.06087 -> 1.05967 in bfloat16."""
    inputs = EditInputs(image=small, reference=small, prompt="a house", steps=2)
    with restored_and_finite(half):
        info = run(half, "reference", "textual_inversion", inputs, train_steps=3, learning_rate=2e-2)
    assert info["eval loss after"] < info["eval loss before"] - 5e-4, info
    assert_scaling(half, info)


def test_imagic(half: Backbone, small: Image.Image) -> None:
    """The loss on 8 fixed (t, noise) probes before stage A, after A (embedding), after B (LoRA), 2 + 2 steps:
    measured 1.0537 -> 1.0500 -> 1.0470 in float32 and float16, 1.0536 -> 1.0501 -> 1.0470 in bfloat16."""
    inputs = EditInputs(image=small, prompt="a house in the snow", steps=1)
    params = {"embedding_steps": 2, "lora_steps": 2, "timesteps_per_step": 1, "embedding_lr": 0.05}
    with restored_and_finite(half):
        info = run(half, "text", "imagic", inputs, **params)
    before, after_a, after_b = (float(x) for x in info["probe_loss"].split(" -> "))
    assert after_a < before - 1e-3 and after_b < after_a - 1e-3, info
    assert_scaling(half, info, "embedding_")
    assert_scaling(half, info, "lora_")


def test_drag_diffusion(half: Backbone, small: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    """Motion loss at the tracked handles, 3 iterations: measured 0.4573 -> 0.4491 in float32 (3 of 3 Adam steps
    lowering it where taken), 0.4582 -> 0.4505 (3/3) in float16 at scale 2^12, 0.4547 -> 0.4510 (2/3) in
    bfloat16."""
    latents: list[torch.Tensor] = []
    monkeypatch.setattr(drag_diffusion, "decode_latents", lambda bb, z: latents.append(z) or decode_latents(bb, z))
    drags = [Drag((30, 40), (30, 28))]
    inputs = EditInputs(image=small, prompt="a house", mask=center_mask(small.size), drags=drags, steps=4)
    params = {"iterations": 3, "learning_rate": 0.002, "inversion_strength": 0.75}
    with restored_and_finite(half):
        info = run(half, "drag", "drag_diffusion", inputs, **params)
    assert info["iterations_used"] == 3 and info["loss_final"] < info["loss_initial"], info
    assert int(info["steps_lowering_loss"].split("/")[0]) >= 2, info  # at the handles where each step was taken
    assert latents[0].dtype == torch.float32 and latents[0].isfinite().all()
    assert_scaling(half, info, scale=drag_diffusion.LOSS_SCALE)


def test_drag_diffusion_lora(half: Backbone, small: Image.Image) -> None:
    """The LoRA's loss on 8 fixed (t, noise) probes falls over 4 steps (float32 masters on the half UNet), then the
    drag runs through it; the runner deletes the adapter (``restored_and_finite`` checks the state)."""
    drags = [Drag((30, 40), (30, 28))]
    inputs = EditInputs(image=small, prompt="a house", drags=drags, steps=2)
    params = {"lora_steps": 4, "lora_lr": 5e-3, "lora_rank": 4, "iterations": 1, "inversion_strength": 0.5}
    with restored_and_finite(half):
        info = run(half, "drag", "drag_diffusion_lora", inputs, **params)
    before, after = (float(x) for x in info["lora_probe_loss"].split(" -> "))
    assert after < before, info
    assert_scaling(half, info, "lora_")


def test_layout_guidance(half: Backbone) -> None:
    """Backward guidance differentiates the cross-attention energy through the half UNet into a float32 latent:
    measured 0.6673 -> 0.6619 over the 5 gradient steps of the one guided step in float16 (scale 2^12)."""
    from methods.core.box_attention import LOSS_SCALE

    inputs = EditInputs(prompt="a street with a red car", boxes=[Box(0.1, 0.5, 0.5, 0.9, "a red car")], steps=4)
    with restored_and_finite(half):
        info = run(half, "layout", "layout_guidance", inputs)
    assert info["energy_after"] < info["energy_before"], info
    assert_scaling(half, info, scale=LOSS_SCALE)


def test_null_text_inversion(half: Backbone, small: Image.Image) -> None:
    """One sampling step, 3 Adam steps, no early stop: the MSE to the pivot is ~1e-5 (SD's range), where
    float16 gradients underflow unless scaled. Measured 8.1e-6 -> 2.3e-6 in float32 and scaled float16, -> 2.8e-6
    in bfloat16, against -> 6.9e-6 in float16 with the scale set to 1."""
    with restored_and_finite(half):
        options = {"inner_steps": 3, "learning_rate": 0.1, "early_stop": False}
        result = invert(half, small, "a house on a meadow", 1, 7.5, "null-text", **options)
        decode_latents(half, reconstruct(half, result))
    report = result.report
    assert all(e.dtype == torch.float32 and e.isfinite().all() for e in result.null_embeds)
    assert report["final_loss"][0] < 0.5 * report["initial_loss"][0], report
    assert report["skipped"] == [0] and report["iterations"] == [3], report


def test_x0_guidance_methods(half: Backbone, small: Image.Image) -> None:
    """Sound guidance and universal guidance backpropagate a score of the decoded x̂0 through the half VAE (and the
    ViT-H image encoder / DiT + classifier): float16 scales the objective (methods/core/guidance.py). The result is
    finite, the scores are numbers, and the shared modules are restored."""
    rate = 16_000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate)).astype(np.float32)
    for name in ("imagebind_audio", "ip_adapter_image_encoder", "dit", "imagenet_classifier"):
        half.addon(name)  # loaded before the watch: the shared modules compared afterwards include them
    inputs = EditInputs(image=small, prompt="a house", audio=Audio(tone, rate), steps=4)
    with restored_and_finite(half):
        info = run(half, "audio", "sound_guidance", inputs, scale=0.5)
    steps = [float(c) for c in info["cosine of x̂0 per guided step"].split(", ")]
    assert steps and all(np.isfinite(steps))
    inputs = EditInputs(image=small, source_class=281, target_class=1, steps=4)
    with restored_and_finite(half):
        info = run(half, "class", "classifier_guidance_dit", inputs)
    before, after = (float(v) for v in info["log p(target) photo → result"].split(" → "))
    assert np.isfinite(before) and np.isfinite(after)
