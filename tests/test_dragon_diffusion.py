"""DragonDiffusion (drag mode): a guided step lowers the energy and pulls the handle's features onto the target;
without guidance and memory bank it is plain DDIM reconstruction; outside the mask every step is the inversion;
bad drags are InputErrors; the shared UNet is left exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import methods.dragon_diffusion as dragon_diffusion  # noqa: F401  (registers the method)
from methods.core.ddim import ddim_sample
from methods.core.drag_regions import editable_cells
from methods.core.dragon import drag_regions
from methods.core.inversion import invert_image
from methods.core.latents import decode_latents
from methods.core.runner import run_comparison
from methods.core.spec import Drag, EditInputs, InputError, RunContext
from tests.conftest import center_mask

METHOD = dragon_diffusion.DragonDiffusion
# The official energy scale (2e3, times 50 / steps here) is tuned to SD 1.5's features; the tiny UNet's random
# features give ~100x steeper energies: at energy_scale 2 the first guided step overshoots (energy 2.41 -> 2.97
# at index 4), at 0.02 and below every step lowers it (2.43 -> 2.33 at 0.02, -> 2.30 at 0.005). Guidance over
# the whole schedule gives two guided steps of four (indices 4 and 2).
PARAMS = {"energy_scale": 0.005, "guidance_until": 1.0}
DEFAULTS = {"energy_scale": 2.0, "guidance_until": 0.6}  # undo PARAMS
PLAIN = {"w_edit": 0.0, "w_content": 0.0, "w_contrast": 0.0, "memory_bank": False, "sde_strength": 0.0}


def drag_inputs(photo, drags, mask=True) -> EditInputs:
    return EditInputs(
        image=photo, prompt="a house", mask=center_mask(photo.size) if mask else None, drags=drags, steps=4
    )


def run_method(backbone, inputs, seed=0, **params):
    ctx = RunContext(backbone, seed, torch.Generator().manual_seed(seed))
    return METHOD().run(ctx, inputs, METHOD.resolve_params({**PARAMS, **params}))


def denoise(backbone, photo, drags, mask, params, on_latents=None):
    """dragon_denoise on the 4-step inversion of ``photo``; returns (trajectory, embeds, latents, report)."""
    inversion = invert_image(backbone, photo, "a house", 4)
    handles = torch.tensor([(d.handle[1], d.handle[0]) for d in drags], dtype=torch.float32)
    targets = torch.tensor([(d.target[1], d.target[0]) for d in drags], dtype=torch.float32)
    regions = drag_regions(handles, targets, mask, (128, 128), (16, 16), 1)
    editable = editable_cells(mask, (16, 16), backbone.device)
    resolved = METHOD.resolve_params({**PARAMS, **params})
    ctx = RunContext(backbone, 0, torch.Generator().manual_seed(0))
    latents, report = dragon_diffusion.dragon_denoise(
        backbone, inversion.trajectory, inversion.prompt_embeds, regions, resolved, editable, ctx, on_latents=on_latents
    )
    return inversion.trajectory, inversion.prompt_embeds, latents, report


@pytest.mark.parametrize(
    "drags",
    [[Drag((60, 80), (60, 60))], [Drag((60, 80), (66, 74)), Drag((40, 50), (80, 90))]],
    ids=["one-drag", "two-drags"],
)
def test_guided_step_lowers_the_energy_and_pulls_the_handle(backbone, photo, drags, monkeypatch) -> None:
    """Measured (centre mask, 4 steps, energy scale 0.005, guided at indices 4 and 2), energy before -> after the
    update of the same step: one drag 2.4054 -> 2.3152 and 2.6111 -> 2.5979; two drags 2.3704 -> 2.3531 and
    2.5687 -> 2.5645. The edit term's similarity s (features at the target vs the guidance features at the handle,
    mapped to [0, 1]) rises in every update: at index 4, where the latent before the update is the unguided run's
    (nothing precedes the first guided step), one drag 0.762 -> 0.8545 (+0.09 over the unguided run), two drags
    0.7979 -> 0.8161 (+0.018); at index 2 0.7089 -> 0.7184 and 0.7132 -> 0.7166. On the random UNet the gain does
    not survive the later denoising (the final latent's s at the last timestep: 0.551 guided vs 0.589 unguided for
    one drag, 0.6225 vs 0.6242 for two), so that is reported in the info, not asserted."""
    decoded: list[torch.Tensor] = []
    monkeypatch.setattr(dragon_diffusion, "decode_latents", lambda bb, z: decoded.append(z) or decode_latents(bb, z))
    state, processors = backbone.state_fingerprint(), dict(backbone.unet.attn_processors)
    reports: list[tuple[int, int]] = []
    inputs = drag_inputs(photo, drags)
    ctx = RunContext(backbone, 0, torch.Generator().manual_seed(0), lambda step, total: reports.append((step, total)))
    output = METHOD().run(ctx, inputs, METHOD.resolve_params(PARAMS))
    info = output.info

    assert info["guided_steps"] == [4, 2] and info["steps_lowering_energy"] == "2/2"
    for (energy_before, energy_after), (sim_before, sim_after) in zip(
        info["energy_steps"], info["similarity_steps"], strict=True
    ):
        assert energy_after < energy_before
        assert sim_after > sim_before
    assert info["similarity_steps"][0][1] - info["similarity_steps"][0][0] > 0.01
    assert reports[-1] == (9, 9)  # 4 inversion + 4 denoising steps + the final measurement

    # outside the mask the result is the photo's latent, exactly
    trajectory = invert_image(backbone, photo, "a house", 4).trajectory
    outside = torch.from_numpy(np.asarray(inputs.mask).reshape(16, 8, 16, 8).max(axis=(1, 3)) == 0)
    assert torch.equal(decoded[0][..., outside], trajectory[0][..., outside])

    # the shared UNet is left as it was
    assert not any(module._forward_hooks for module in backbone.unet.modules())
    assert not any(p.requires_grad for p in backbone.unet.parameters())
    assert backbone.state_fingerprint() == state and dict(backbone.unet.attn_processors) == processors
    assert torch.is_grad_enabled()
    assert output.image.size == photo.size and output.extras[0][1] == "moved points"


def test_without_guidance_and_bank_it_is_ddim_reconstruction(backbone, photo) -> None:
    """Zero energy weights (guided steps still run, their gradient is exactly 0), no memory bank, no SDE, no
    paste: bit for bit ddim_sample from the inversion's last latent (max |diff| 0.0). Zero energy scale (no
    guided steps) too. Measured: the memory bank alone moves the result by max |diff| 0.085 (mean 0.021), so
    the equality is not vacuous."""
    drags = [Drag((60, 80), (60, 60))]
    trajectory, embeds, latents, report = denoise(backbone, photo, drags, None, {**PLAIN, "paste_start": False})
    reference = ddim_sample(backbone, trajectory[-1], embeds, 4, 4)
    assert report["guided_steps"] == [4, 2]
    assert torch.equal(latents, reference)
    unguided = denoise(backbone, photo, drags, None, {**PLAIN, "paste_start": False, "energy_scale": 0.0})[2]
    assert torch.equal(unguided, reference)
    banked = denoise(backbone, photo, drags, None, {**PLAIN, "paste_start": False, "memory_bank": True})[2]
    assert (banked - reference).abs().max() > 0.01


def test_outside_the_mask_every_step_is_the_inversion(backbone, photo) -> None:
    """Defaults but the tiny energy scale (bank, regional SDE at index 3, paste): after each of the 4 steps the
    latent equals the inversion latent of the level it reached outside the mask, exactly, and differs inside it
    (measured max |diff| 1.55, 3.75, 5.36, 5.38 at levels 3, 2, 1, 0; mostly the 4-step DDIM reconstruction
    error of the random UNet: 1.52 ... 3.87 with guidance, bank, SDE and paste all off)."""
    mask = center_mask(photo.size)
    seen: dict[int, torch.Tensor] = {}
    trajectory = denoise(backbone, photo, [Drag((60, 80), (60, 60))], mask, {}, seen.__setitem__)[0]
    outside = torch.from_numpy(np.asarray(mask).reshape(16, 8, 16, 8).max(axis=(1, 3)) == 0)
    assert sorted(seen) == [0, 1, 2, 3]
    for level, latents in seen.items():
        assert torch.equal(latents[..., outside], trajectory[level][..., outside])
        assert (latents[..., ~outside] - trajectory[level][..., ~outside]).abs().max() > 0.05


@pytest.mark.parametrize(
    ("drags", "mask", "message"),
    [
        ([], True, "at least one drag"),
        ([Drag((60, 80), (140, 60))], True, "outside the 128x128 image"),
        ([Drag((-1, 80), (60, 60))], False, "outside"),
        ([Drag((60, 80), (60, 80))], True, "ends where it starts"),
        ([Drag((60, 80), (60, 60))], "empty", "mask is empty"),
    ],
)
def test_unusable_inputs_are_input_errors(backbone, photo, drags, mask, message) -> None:
    inputs = drag_inputs(photo, drags, mask=bool(mask))
    if mask == "empty":
        inputs.mask = inputs.mask.point(lambda v: 0)
    state = backbone.state_fingerprint()
    with pytest.raises(InputError, match=message):
        run_method(backbone, inputs)
    assert backbone.state_fingerprint() == state


def test_through_the_runner_with_the_defaults(backbone, photo) -> None:
    """The official defaults, no mask (the edit area is a corridor around each drag), the way the tab runs it.
    The regional SDE draws from the run's generator (the runner's is seeded like this test's): the same seed
    gives the same image, another seed another one (measured: seeds 0 and 1 differ by mean |diff| 0.075/255, max
    2/255: the SDE only touches the corridor, in one step of four)."""
    inputs = drag_inputs(photo, [Drag((60, 80), (60, 60))], mask=False)
    comparison = run_comparison(backbone, "drag", ["dragon_diffusion"], inputs, seed=0)
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    assert comparison.result("dragon_diffusion").size == photo.size
    assert {"energy_steps", "similarity_steps", "guided_steps", "target_similarity"} <= set(record["info"])
    first = np.asarray(comparison.result("dragon_diffusion"), dtype=np.int16)
    again = np.asarray(run_method(backbone, inputs, seed=0, **DEFAULTS).image, dtype=np.int16)
    other = np.asarray(run_method(backbone, inputs, seed=1, **DEFAULTS).image, dtype=np.int16)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert not any(module._forward_hooks for module in backbone.unet.modules())
    inputs.drags = []
    skipped = run_comparison(backbone, "drag", ["dragon_diffusion"], inputs, seed=0).records[0]
    assert skipped["status"] == "skipped"
