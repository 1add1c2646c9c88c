"""DragDiffusion with its LoRA step (test-time fine-tuning): the LoRA's denoising loss on the photo falls, a LoRA
weighed 0 is the base model (the result equals plain DragDiffusion bit for bit), and after the run the adapter is
gone and the shared UNet is bit-identical."""

from __future__ import annotations

import torch

from methods.core.runner import run_comparison
from methods.core.spec import Drag, RunContext
from methods.drag_diffusion import DragDiffusion
from methods.drag_diffusion_lora import DragDiffusionLoRA
from tests.helpers import assert_same_image
from tests.test_drag_diffusion import PARAMS, drag_inputs, unet_digest

DRAG = {**PARAMS, "iterations": 3}


def test_lora_fits_the_photo_and_is_removed(backbone, photo) -> None:
    """Measured on the tiny backbone (12 steps at lr 5e-3, rank 4): the loss on 8 fixed (t, noise) probes falls
    from 1.0692 to 0.9675 (the per-step loss, averaged over 5 steps at each end: 1.0759 -> 1.0066); the drag
    then runs through the tuned UNet; afterwards no adapter, hook or trainable parameter is left and every UNet
    weight is as before."""
    state, weights = backbone.state_fingerprint(), unet_digest(backbone)
    inputs = drag_inputs(photo, [Drag((60, 80), (60, 60))])
    params = {"drag_diffusion_lora": {**DRAG, "lora_steps": 12, "lora_lr": 5e-3, "lora_rank": 4}}
    comparison = run_comparison(backbone, "drag", ["drag_diffusion_lora"], inputs, seed=0, params=params)
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    before, after = map(float, record["info"]["lora_probe_loss"].split(" -> "))
    assert after < before
    assert record["info"]["iterations_used"] >= 1 and "distance_after_px" in record["info"]
    assert not getattr(backbone.unet, "peft_config", None)
    assert not any("lora_" in name for name, _ in backbone.unet.named_parameters())
    assert not any(module._forward_hooks for module in backbone.unet.modules())
    assert not any(p.requires_grad for p in backbone.unet.parameters())
    assert backbone.state_fingerprint() == state and unet_digest(backbone) == weights


def test_lora_scale_zero_is_plain_drag_diffusion(backbone, photo) -> None:
    """A tuned LoRA weighed 0 adds exact zeros: inversion, latent optimisation and denoising match DragDiffusion
    without a LoRA bit for bit (the inversion is not served from the cache across the two: its key holds the
    adapter's weights and scale)."""
    inputs = drag_inputs(photo, [Drag((60, 80), (60, 60))])
    ctx = RunContext(backbone, 0, torch.Generator().manual_seed(0))
    with backbone.borrowed():
        plain = DragDiffusion().run(ctx, inputs, DragDiffusion.resolve_params(DRAG))
    values = {**DRAG, "lora_steps": 3, "lora_lr": 5e-3, "lora_rank": 4, "lora_scale": 0.0}
    with backbone.borrowed():
        tuned = DragDiffusionLoRA().run(ctx, inputs, DragDiffusionLoRA.resolve_params(values))
    assert_same_image(tuned.image, plain.image)
    assert tuned.info["loss_final"] == plain.info["loss_final"]
