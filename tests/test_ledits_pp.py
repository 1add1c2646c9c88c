"""LEDITS++ through the hub equals diffusers' LEditsPPPipelineStableDiffusion called by hand; its inversion
reconstructs the photo; the attention processors it installs on the shared UNet are put back (also when it
raises), so SDEdit afterwards is unchanged; on a UNet with cross-attention at 1/4 latent resolution the
paper's intersected masks (attention ∩ noise) run and are shown."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, LEditsPPPipelineStableDiffusion

import methods.ledits_pp as ledits_pp
from methods.core.backbone import Backbone
from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from methods.core.spec import RunContext
from tests.helpers import assert_same_image, direct_components, seeded_generator, weights_checksum

SEED = 3
PARAMS = {"edit_guidance_scale": 6.0, "edit_threshold": 0.85, "skip": 0.2, "source_guidance_scale": 3.0}
# What the inversion solves for: second order at every step, non-zero final sigma (see ledits_scheduler).
SCHEDULER = {
    "algorithm_type": "sde-dpmsolver++",
    "solver_order": 2,
    "final_sigmas_type": "sigma_min",
    "lower_order_final": False,
}


def _generator() -> torch.Generator:
    return seeded_generator(SEED)


def hub(backbone: Backbone, inputs, **params):
    comparison = run_comparison(backbone, "text", ["ledits_pp"], inputs, SEED, params={"ledits_pp": params})
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    extras = [cell for cell in comparison.cells if cell.kind == "extra"]
    return comparison.result("ledits_pp"), extras, record


def direct(
    backbone: Backbone,
    inputs,
    concepts,
    use_cross_attn_mask=False,
    use_intersect_mask=False,
    scheduler_config=None,
    **params,
):
    """The same edit written against diffusers alone (inside borrowed(): the pipeline leaks its processors)."""
    scheduler = DPMSolverMultistepScheduler.from_config(backbone.scheduler.config, **(scheduler_config or SCHEDULER))
    with backbone.borrowed():
        pipe = LEditsPPPipelineStableDiffusion(**direct_components(backbone, scheduler=scheduler))
        pipe.set_progress_bar_config(disable=True)
        generator = _generator()
        inversion = pipe.invert(
            image=inputs.image,
            source_prompt=inputs.source_prompt,
            source_guidance_scale=params.get("source_guidance_scale", 3.5),
            num_inversion_steps=inputs.steps,
            skip=params.get("skip", 0.15),
            generator=generator,
        )
        image = pipe(
            editing_prompt=concepts,
            reverse_editing_direction=params.get("reverse_editing_direction", False),
            edit_guidance_scale=params.get("edit_guidance_scale", 7.5),
            edit_threshold=params.get("edit_threshold", 0.9),
            use_cross_attn_mask=use_cross_attn_mask,
            use_intersect_mask=use_intersect_mask,
            generator=generator,
        ).images[0]
    return image, pipe.activation_mask, inversion


def assert_masks_match(extras, activation_mask, size) -> None:
    assert len(extras) == activation_mask.shape[1]
    for c, cell in enumerate(extras):
        assert cell.image.size == size
        expected = ledits_pp.mask_image(activation_mask[:, c, 0, 0].float().mean(0).numpy(), size)
        assert_same_image(cell.image, expected)


def test_equals_diffusers_pipeline_with_intersected_masks(backbone) -> None:
    """The tiny UNet has SD 1.5's cross-attention at 1/4 latent resolution (16x16 maps at 512 px), so the default
    implicit mask (attention map M1 intersected with the noise mask M2, as in the paper) runs: the result and the
    per-concept masks equal the pipeline's with both masks on; the noise-only mask gives another image."""
    inputs = example_inputs("text", backbone)
    assert ledits_pp.has_quarter_resolution_attention(backbone.unet)
    processors = dict(backbone.unet.attn_processors)
    ours, extras, record = hub(backbone, inputs, **PARAMS)
    assert "implicit_mask" not in record["info"]  # no fallback
    assert all(backbone.unet.attn_processors[name] is p for name, p in processors.items())
    theirs, activation_mask, _ = direct(
        backbone, inputs, ["a house in the snow", "winter"], use_cross_attn_mask=True, use_intersect_mask=True, **PARAMS
    )
    assert_same_image(ours, theirs)
    assert_masks_match(extras, activation_mask, inputs.image.size)
    noise_only, _, _ = hub(backbone, inputs, **PARAMS, implicit_mask="noise")
    assert np.abs(np.asarray(noise_only, np.int16) - np.asarray(ours, np.int16)).max() > 0


def test_concepts_and_direction_matter(backbone) -> None:
    """Measured: reversing the direction changes pixels by up to 255, one whole-prompt concept instead of two
    comma-separated ones by up to 129; the whole-prompt run equals diffusers with that single concept."""
    inputs = example_inputs("text", backbone)
    base, _, _ = hub(backbone, inputs, **PARAMS)
    reverse, _, _ = hub(backbone, inputs, **PARAMS, reverse_editing_direction=True)
    whole, extras, record = hub(backbone, inputs, **PARAMS, split_concepts=False)
    assert record["info"]["concepts"] == inputs.prompt and len(extras) == 1
    theirs, _, _ = direct(
        backbone, inputs, [inputs.prompt], use_cross_attn_mask=True, use_intersect_mask=True, **PARAMS
    )
    assert_same_image(whole, theirs)
    arrays = [np.asarray(x, dtype=np.int16) for x in (base, reverse, whole)]
    assert np.abs(arrays[0] - arrays[1]).max() > 10 and np.abs(arrays[0] - arrays[2]).max() > 10


def test_inversion_reconstructs_the_photo_without_edit_guidance(backbone) -> None:
    """Edit-friendly inversion is exact: with the edit scale at 0 and no source prompt, sampling with the
    stored noise maps lands on the photo's latent, so the result is its VAE reconstruction. Measured (tiny, 4
    steps): max pixel difference 1 (rounding; latent error ~1e-5); with edit scale 10 the result differs by up
    to 240. With diffusers' current scheduler defaults (final sigma zero, first-order final steps) the same
    reconstruction is off by up to 225 (mean 38 of 255), which is why the hub configures the scheduler."""
    inputs = example_inputs("text", backbone)
    inputs.source_prompt = ""
    ours, _, _ = hub(backbone, inputs, edit_guidance_scale=0.0)
    _, _, inversion = direct(backbone, inputs, ["a house in the snow", "winter"], edit_guidance_scale=0.0)
    reconstruction = inversion.vae_reconstruction_images[0]
    assert_same_image(ours, reconstruction, atol=1)
    edited, _, _ = hub(backbone, inputs, edit_guidance_scale=10.0)
    assert np.abs(np.asarray(edited, np.int16) - np.asarray(ours, np.int16)).max() > 10
    defaults = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}  # what the pipeline sets by itself
    off, _, _ = direct(backbone, inputs, ["winter"], scheduler_config=defaults, edit_guidance_scale=0.0)
    assert np.abs(np.asarray(off, np.int16) - np.asarray(reconstruction, np.int16)).max() > 50


def test_processors_restored_even_on_error(backbone, monkeypatch) -> None:
    inputs = example_inputs("text", backbone)
    unet = backbone.unet
    processors, state, weights = dict(unet.attn_processors), backbone.state_fingerprint(), weights_checksum(backbone)
    ctx = RunContext(backbone, SEED, torch.Generator("cpu").manual_seed(SEED))
    params = ledits_pp.LeditsPP.resolve_params(PARAMS)
    with backbone.borrowed():  # without the runner: borrowed() alone restores
        ledits_pp.LeditsPP().run(ctx, inputs, params)
    assert all(unet.attn_processors[name] is p for name, p in processors.items())

    def fail(self, *args, **kwargs):
        raise RuntimeError("boom after invert()")

    monkeypatch.setattr(LEditsPPPipelineStableDiffusion, "__call__", fail)
    with pytest.raises(RuntimeError, match="boom"), backbone.borrowed():
        ledits_pp.LeditsPP().run(ctx, inputs, params)
    assert all(unet.attn_processors[name] is p for name, p in processors.items())
    assert backbone.state_fingerprint() == state and weights_checksum(backbone) == weights


def test_sdedit_unchanged_after_ledits(backbone) -> None:
    inputs = example_inputs("text", backbone)
    before = run_comparison(backbone, "text", ["sdedit"], inputs, SEED).result("sdedit")
    hub(backbone, inputs, **PARAMS)
    after = run_comparison(backbone, "text", ["sdedit"], inputs, SEED).result("sdedit")
    assert_same_image(before, after)
