"""Imagic (test-time fine-tuning): both optimisation stages lower the photo's denoising loss, the interpolation
weight eta matters, and the shared UNet is left bit-identical (weights, parameter objects, module tree, attention
processors, no adapter, no requires_grad, grad mode) after a run and after a run that raises mid-way."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import methods.imagic as imagic
from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from methods.core.spec import RunContext
from tests.helpers import weights_checksum


def unet_digest(unet) -> str:
    digest = hashlib.sha256()
    for name, parameter in unet.named_parameters():
        digest.update(name.encode() + parameter.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def snapshot(backbone) -> dict:
    unet = backbone.unet
    return {
        "sha256": unet_digest(unet),
        "checksum": weights_checksum(backbone),
        "state": backbone.state_fingerprint(),
        "parameters": [(name, id(p)) for name, p in unet.named_parameters()],
        "modules": [(name, type(m).__name__, id(m)) for name, m in unet.named_modules()],
        "processors": dict(unet.attn_processors),
    }


def assert_clean(backbone, before: dict) -> None:
    unet = backbone.unet
    after = snapshot(backbone)
    assert after["sha256"] == before["sha256"]
    assert after["checksum"] == before["checksum"]
    assert after["state"] == before["state"]
    assert after["parameters"] == before["parameters"]  # the very same parameter objects, same names
    assert after["modules"] == before["modules"]  # peft's wrappers are gone
    assert all(unet.attn_processors[name] is p for name, p in before["processors"].items())
    assert not getattr(unet, "peft_config", None)
    assert "_hf_peft_config_loaded" not in vars(unet)
    assert not any(p.requires_grad for p in unet.parameters())
    assert not any(p.requires_grad for p in backbone.text_encoder.parameters())


def trend(text: str) -> list[float]:
    return [float(x) for x in text.split(" -> ")]


def test_both_losses_fall(backbone) -> None:
    """Defaults (30 + 30 steps, 4 stratified timesteps a step), seeds 0-2 through the runner, tiny backbone.
    Measured (mean of the first 5 vs the last 5 steps): embedding loss 1.0917 -> 1.0695, 1.0839 -> 1.0576,
    1.0732 -> 1.0556; LoRA loss 1.0546 -> 0.9930, 1.0766 -> 0.9809, 1.0450 -> 0.9893; loss on 8 fixed
    (t, noise) probes before A / after A / after B: 1.0535 -> 1.0295 -> 0.9532, 1.0472 -> 1.0231 -> 0.9434,
    1.0493 -> 1.0287 -> 0.9522 (seeds 3-5 fall the same way). The random tiny UNet barely depends on its text
    input, so stage A's drop is small (~2 %); each bound is a third to a half of the smallest measured drop.
    On tiny-v3 (SD 1.5's shape) seed 0: embedding 1.0705 -> 1.0686, LoRA 1.0480 -> 0.9815, probes 1.0330 ->
    1.0150 -> 0.9566."""
    inputs = example_inputs("text", backbone)
    for seed in range(3):
        comparison = run_comparison(backbone, "text", ["imagic"], inputs, seed)
        record = comparison.records[0]
        assert record["status"] == "ok", record["message"]
        info = record["info"]
        first, last = trend(info["embedding_loss"])
        assert last < first - 0.0008, info  # tiny-v3 seed 0: 1.0705 -> 1.0686
        first, last = trend(info["lora_loss"])
        assert last < first - 0.02, info
        before, after_a, after_b = trend(info["probe_loss"])
        assert after_a < before - 0.01 and after_b < after_a - 0.03, info
        assert info["embedding_shift"] > 0


def test_eta_matters(backbone) -> None:
    """Stage C interpolates e = eta e_tgt + (1 - eta) e_opt. With a short, strong stage A (10 steps, lr 0.05) the
    result moves further from the eta = 0 one as eta grows: max pixel difference 49 at eta = 0.5, 87 at eta = 1."""
    inputs = example_inputs("text", backbone)
    quick = {"embedding_steps": 10, "lora_steps": 2, "embedding_lr": 0.05}

    def edit(eta: float) -> np.ndarray:
        comparison = run_comparison(backbone, "text", ["imagic"], inputs, 0, params={"imagic": {**quick, "eta": eta}})
        return np.asarray(comparison.result("imagic"), np.int16)

    zero, half, one = edit(0.0), edit(0.5), edit(1.0)
    assert 10 < np.abs(zero - half).max() < np.abs(zero - one).max()
    assert np.abs(zero - one).max() > 40


def test_shared_unet_bit_identical_after_a_run(backbone) -> None:
    inputs = example_inputs("text", backbone)
    before = snapshot(backbone)
    params = imagic.Imagic.resolve_params({"embedding_steps": 4, "lora_steps": 4})
    ctx = RunContext(backbone, 0, torch.Generator("cpu").manual_seed(0))
    with backbone.borrowed():  # without the runner: borrowed() alone cleans up
        imagic.Imagic().run(ctx, inputs, params)
    assert_clean(backbone, before)
    assert torch.is_grad_enabled()
    with torch.no_grad(), backbone.borrowed():  # it still trains under no_grad, and leaves grad mode off
        output = imagic.Imagic().run(ctx, inputs, params)
        assert not torch.is_grad_enabled()
    assert trend(output.info["lora_loss"])[0] != trend(output.info["lora_loss"])[1]
    assert_clean(backbone, before)


@pytest.mark.parametrize("stage", ["embedding", "lora"])
def test_exception_mid_run_leaves_everything_clean(backbone, monkeypatch, stage: str) -> None:
    inputs = example_inputs("text", backbone)
    params = imagic.Imagic.resolve_params({"embedding_steps": 4, "lora_steps": 4})
    fail_at = 3 if stage == "embedding" else params["embedding_steps"] + 3  # call number of the loss that raises
    calls, seen_adapters = [], []
    original = imagic.Reconstruction.loss

    def failing(self, embeds, draw=None):
        if draw is None:  # a training step (probes pass their own draw)
            calls.append(1)
            seen_adapters.append(dict(getattr(backbone.unet, "peft_config", {}) or {}))
            if len(calls) == fail_at:
                raise RuntimeError("boom inside the optimisation")
        return original(self, embeds, draw)

    monkeypatch.setattr(imagic.Reconstruction, "loss", failing)
    before = snapshot(backbone)
    ctx = RunContext(backbone, 0, torch.Generator("cpu").manual_seed(0))
    with pytest.raises(RuntimeError, match="boom"), backbone.borrowed():
        imagic.Imagic().run(ctx, inputs, params)
    assert (imagic.ADAPTER in seen_adapters[-1]) == (stage == "lora")  # the raise happened with the LoRA on
    assert_clean(backbone, before)
    assert torch.is_grad_enabled()
    calls.clear()  # the same failure through the runner: an error cell, and still clean
    comparison = run_comparison(backbone, "text", ["imagic"], inputs, 0, params={"imagic": params})
    assert comparison.records[0]["status"] == "error" and "boom" in comparison.records[0]["message"]
    assert_clean(backbone, before)
