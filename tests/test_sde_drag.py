"""SDE-Drag: each move pastes the handle patch (times alpha) at the target of the noisy latent and denoises from
there; the cycle-SDE with recorded noise reconstructs an unedited latent; outside the mask the photo's latent is
kept exactly; bad drags are InputErrors; the shared UNet is left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import methods.sde_drag as sde_drag  # noqa: F401  (registers the method)
from methods.core.ddim import ddim_invert, ddim_sample
from methods.core.drag_regions import CycleSDE
from methods.core.latents import decode_latents, encode_image, encode_prompt
from methods.core.runner import run_comparison
from methods.core.spec import Drag, EditInputs, InputError, RunContext
from tests.conftest import center_mask

PARAMS = {"patch_radius": 2}  # r = 5 cells would cover most of the tiny 16x16 latent grid
LONG = [Drag((40, 64), (88, 64))]  # latent cells (5, 8) -> (11, 8): 6 cells = 3 moves of 2


def drag_inputs(photo, drags, mask=True, steps=4) -> EditInputs:
    return EditInputs(
        image=photo, prompt="a house", mask=center_mask(photo.size) if mask else None, drags=drags, steps=steps
    )


def run(backbone, inputs, params=PARAMS, seed=0):
    method = sde_drag.SDEDrag
    ctx = RunContext(backbone, seed, torch.Generator().manual_seed(seed))
    return method().run(ctx, inputs, method.resolve_params(params))


def test_each_move_pastes_the_source_patch_and_denoises_from_it(backbone, photo, monkeypatch) -> None:
    """Measured: 3 moves (cells 5 -> 7 -> 9 -> 11 along row 8); at each paste the 4x4 target window is exactly
    1.1 x the source window of x_t0 (max difference 0.0), cells outside both windows are untouched, the
    source-only cells are refilled (changed), and the first UNet batch of that move is [pasted, recorded x_t0]."""
    pastes: list[tuple[torch.Tensor, list, list, torch.Tensor]] = []
    batches: list[torch.Tensor] = []
    paste, predict = sde_drag.copy_and_paste, sde_drag.predict_noise

    def spy_paste(latents, starts, ends, params, generator):
        out = paste(latents, starts, ends, params, generator)
        pastes.append((latents.clone(), starts, ends, out.clone()))
        return out

    def spy_predict(backbone, latents, *args, **kwargs):
        batches.append(latents.clone())
        return predict(backbone, latents, *args, **kwargs)

    monkeypatch.setattr(sde_drag, "copy_and_paste", spy_paste)
    monkeypatch.setattr(sde_drag, "predict_noise", spy_predict)
    output = run(backbone, drag_inputs(photo, LONG))
    assert output.info["moves"] == 3 and len(pastes) == 3 and len(batches) == 3 * 2  # 2 levels (0.6 x 4) per move
    assert [p[1][0] for p in pastes] == [(5, 8), (7, 8), (9, 8)] and [p[2][0] for p in pastes] == [
        (7, 8),
        (9, 8),
        (11, 8),
    ]
    for move, (before, starts, ends, after) in enumerate(pastes):
        (sr, sc), (tr, tc) = sde_drag.patch_windows(starts[0], ends[0], 2, (16, 16))
        assert torch.equal(after[..., tr, tc], 1.1 * before[..., sr, sc])
        touched = torch.zeros(16, 16, dtype=torch.bool)
        touched[sr, sc] = touched[tr, tc] = True
        assert torch.equal(after[..., ~touched], before[..., ~touched])
        source_only = touched.clone()
        source_only[tr, tc] = False
        assert not torch.isclose(after[..., source_only], before[..., source_only]).any()
        first = batches[2 * move]
        assert torch.equal(first[0:1], after) and torch.equal(first[1:2], before)


def test_cycle_sde_round_trip_reconstructs_the_latent(backbone, photo) -> None:
    """Noise to t0 = 6 of 10 levels and run the reverse cycle-SDE with the recorded noise and no edit, guidance
    3 -> 1 as the method: measured max |x0' - x0| = 2.0e-6 and 2.2e-6 (float32 rounding; bound asserted 1e-5,
    max |x0| = 0.26) for seeds 0 and 1, whose noised latents differ (mean |x_t0 - x_t0'| = 0.96). The ODE
    counterpart (DDIM inversion at guidance 1, DDIM sampling at 3) misses by mean 0.16 / max 1.04 (0.14 / 1.09 at
    guidance 1)."""
    x0 = encode_image(backbone, photo)
    embeds = encode_prompt(backbone, "a house")
    sde = CycleSDE.on(backbone, 10, 6)
    noised = []
    for seed in (0, 1):
        trajectory = sde.forward(x0, torch.Generator().manual_seed(seed))
        restored = sde_drag.cycle_sde_denoise(backbone, sde, trajectory[-1].clone(), trajectory, embeds, 3.0)
        assert float((restored - x0).abs().max()) < 1e-5
        noised.append(trajectory[-1])
    assert float((noised[0] - noised[1]).abs().mean()) > 0.5
    ode = ddim_invert(backbone, x0, embeds[0], 10, 1.0, 6)
    back = ddim_sample(backbone, ode[-1], embeds[0], 10, 6, 3.0, negative_embeds=embeds[1])
    assert float((back - x0).abs().mean()) > 0.05


def test_outside_the_mask_the_photo_latent_is_kept(backbone, photo, monkeypatch) -> None:
    """Measured (3 moves, centre mask = latent cells 4..12): the final latent equals the photo's VAE latent exactly
    outside the mask (max difference 0.0) and differs inside it (mean 0.67); the same seed gives the same image; the
    UNet's processors, hooks and gradients are as before."""
    decoded: list[torch.Tensor] = []

    def spy(backbone, latents):
        decoded.append(latents)
        return decode_latents(backbone, latents)

    monkeypatch.setattr(sde_drag, "decode_latents", spy)
    state = backbone.state_fingerprint()
    inputs = drag_inputs(photo, LONG)
    output = run(backbone, inputs)
    source = encode_image(backbone, photo)
    outside = torch.from_numpy(np.asarray(inputs.mask).reshape(16, 8, 16, 8).max(axis=(1, 3)) == 0)
    assert torch.equal(decoded[0][..., outside], source[..., outside])
    assert float((decoded[0][..., ~outside] - source[..., ~outside]).abs().mean()) > 0.1
    assert np.array_equal(np.asarray(run(backbone, inputs).image), np.asarray(output.image))
    assert output.extras[0][1] == "moved points" and output.image.size == photo.size
    assert backbone.state_fingerprint() == state
    assert not any(module._forward_hooks for module in backbone.unet.modules())
    assert not any(p.requires_grad for p in backbone.unet.parameters())


@pytest.mark.parametrize(
    ("drags", "message"),
    [
        ([], "at least one drag"),
        ([Drag((60, 80), (140, 60))], "outside the 128x128 image"),
        ([Drag((-1, 80), (60, 60))], "outside"),
        ([Drag((60, 80), (60, 80))], "ends where it starts"),
        ([Drag((10 + i, 10), (20 + i, 10)) for i in range(17)], "At most 16 drag pairs"),
    ],
)
def test_unusable_drags_are_input_errors(backbone, photo, drags, message) -> None:
    with pytest.raises(InputError, match=message):
        run(backbone, drag_inputs(photo, drags))


def test_empty_mask_is_an_input_error(backbone, photo) -> None:
    inputs = drag_inputs(photo, LONG)
    inputs.mask = inputs.mask.point(lambda v: 0)
    with pytest.raises(InputError, match="mask is empty"):
        run(backbone, inputs)


def test_through_the_runner(backbone, photo) -> None:
    """No mask and two drags as the tab runs it (defaults but r = 2); without drags the cell is skipped."""
    inputs = drag_inputs(photo, [Drag((60, 80), (60, 60)), Drag((30, 30), (40, 40))], mask=False)
    comparison = run_comparison(backbone, "drag", ["sde_drag"], inputs, seed=0, params={"sde_drag": PARAMS})
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    assert record["info"]["moves"] == 2 and comparison.result("sde_drag").size == photo.size
    inputs.drags = []
    skipped = run_comparison(backbone, "drag", ["sde_drag"], inputs, seed=0).records[0]
    assert skipped["status"] == "skipped" and "handle" in skipped["message"]
