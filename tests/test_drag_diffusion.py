"""DragDiffusion (training-free, no LoRA): motion supervision lowers its loss and the tracked handle moves
towards the target; outside the mask the source is kept; the shared UNet is left exactly as it was."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import ImageFilter

import methods.drag_diffusion as drag_diffusion  # noqa: F401  (registers the method)
from methods.core.latents import decode_latents, encode_image
from methods.core.runner import run_comparison
from methods.core.spec import Drag, EditInputs, InputError, RunContext
from tests.conftest import center_mask

# Tiny latents are ~5x smaller than SD's (mean |z_t| 0.15 vs ~0.8), so Adam's absolute step of 0.002 here
# is about the paper's 0.01 on SD 1.5.
PARAMS = {"iterations": 10, "learning_rate": 0.002, "inversion_strength": 0.75}


def unet_digest(backbone) -> str:
    digest = hashlib.sha256()
    for name, parameter in backbone.unet.named_parameters():
        digest.update(name.encode() + parameter.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def drag_inputs(photo, drags, mask=True) -> EditInputs:
    return EditInputs(
        image=photo, prompt="a house", mask=center_mask(photo.size) if mask else None, drags=drags, steps=4
    )


def test_drag_moves_the_handle_and_keeps_the_rest(backbone, photo, monkeypatch) -> None:
    """Measured on the tiny backbone (drag (60, 80) -> (60, 60), centre mask, 10 iterations): motion loss
    0.4044 -> 0.3614 with 10 of 10 Adam steps lowering it where they were taken; handle-target distance
    20 -> 18 px; latent outside the mask identical to the source latent; pixels outside the 16-px-dilated
    mask differ from the VAE round trip of the source by MAE 17/255 (the random VAE decoder's mid-block
    attention spreads every latent change over the whole image), against 52/255 inside the mask."""
    decoded: list[torch.Tensor] = []

    def spy(backbone, latents):
        decoded.append(latents)
        return decode_latents(backbone, latents)

    monkeypatch.setattr(drag_diffusion, "decode_latents", spy)
    state, weights = backbone.state_fingerprint(), unet_digest(backbone)
    reports: list[tuple[int, int]] = []
    ctx = RunContext(backbone, 0, torch.Generator().manual_seed(0), lambda step, total: reports.append((step, total)))
    inputs = drag_inputs(photo, [Drag((60, 80), (60, 60))])
    method = drag_diffusion.DragDiffusion
    output = method().run(ctx, inputs, method.resolve_params(PARAMS))
    info = output.info

    # motion supervision and point tracking
    assert info["iterations_used"] == 10
    assert info["loss_final"] < info["loss_initial"]
    lowered, taken = map(int, info["steps_lowering_loss"].split("/"))
    assert taken == 10 and lowered >= 7
    assert info["distance_after_px"] < info["distance_before_px"] == 20.0
    assert reports[-1] == (16, 16)  # 3 inversion + 10 optimisation + 3 denoising steps

    # outside the mask: the source latent exactly, and in pixels the source up to the VAE round trip
    source = encode_image(backbone, photo)
    outside = torch.from_numpy(np.asarray(inputs.mask).reshape(16, 8, 16, 8).max(axis=(1, 3)) == 0)  # 8x8 cells
    assert torch.allclose(decoded[0][..., outside], source[..., outside], atol=1e-6)
    round_trip = np.asarray(decode_latents(backbone, source), dtype=np.float64)
    error = np.abs(np.asarray(output.image, dtype=np.float64) - round_trip).mean(axis=-1)
    far = np.asarray(inputs.mask.filter(ImageFilter.MaxFilter(33))) == 0
    assert error[far].mean() < 25.0 and error[far].mean() < 0.6 * error[np.asarray(inputs.mask) > 0].mean()

    # the shared UNet is untouched
    assert not any(module._forward_hooks for module in backbone.unet.modules())
    assert not any(p.requires_grad for p in backbone.unet.parameters())
    assert backbone.state_fingerprint() == state and unet_digest(backbone) == weights
    assert torch.is_grad_enabled()
    assert output.image.size == photo.size and output.extras[0][1] == "tracked handles"


@pytest.mark.parametrize(
    ("drags", "mask", "message"),
    [
        ([], True, "at least one drag"),
        ([Drag((60, 80), (140, 60))], True, "outside the 128x128 image"),
        ([Drag((-1, 80), (60, 60))], True, "outside"),
        ([Drag((60, 80), (60, 80))], True, "ends where it starts"),
    ],
)
def test_unusable_drags_are_input_errors(backbone, photo, drags, mask, message) -> None:
    ctx = RunContext(backbone, 0, torch.Generator().manual_seed(0))
    method = drag_diffusion.DragDiffusion
    with pytest.raises(InputError, match=message):
        method().run(ctx, drag_inputs(photo, drags, mask), method.resolve_params(PARAMS))


def test_empty_mask_is_an_input_error(backbone, photo) -> None:
    inputs = drag_inputs(photo, [Drag((60, 80), (60, 60))])
    inputs.mask = inputs.mask.point(lambda v: 0)
    method = drag_diffusion.DragDiffusion
    with pytest.raises(InputError, match="mask is empty"):
        method().run(RunContext(backbone, 0, torch.Generator()), inputs, method.resolve_params(PARAMS))


def test_through_the_runner(backbone, photo) -> None:
    """No mask (the whole image may move) and two drags, the way the tab runs it; no drags is skipped."""
    inputs = drag_inputs(photo, [Drag((60, 80), (60, 60)), Drag((30, 30), (40, 40))], mask=False)
    params = {"drag_diffusion": {**PARAMS, "iterations": 3}}
    comparison = run_comparison(backbone, "drag", ["drag_diffusion"], inputs, seed=0, params=params)
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    assert comparison.result("drag_diffusion").size == photo.size
    assert record["info"]["iterations_used"] <= 3
    assert {"loss_initial", "loss_final", "distance_before_px", "distance_after_px"} <= set(record["info"])
    inputs.drags = []
    skipped = run_comparison(backbone, "drag", ["drag_diffusion"], inputs, seed=0).records[0]
    assert skipped["status"] == "skipped" and "handle" in skipped["message"]
