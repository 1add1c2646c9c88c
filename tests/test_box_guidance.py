"""Box-guided layout methods (Layout guidance, BoxDiff) on the tiny backbone: one energy step is exactly
z - step * grad E and lowers E; guidance raises each phrase's attention mass inside its box over the unguided
run; strength 0 is StableDiffusionPipeline bit for bit; the photo-edit mode keeps the latents (at every step)
and the pixels outside the boxes; unusable boxes are sentences; the shared UNet is left as it was.

The tiny backbone's random weights give nearly uniform cross-attention (each of 77 tokens gets ~1/77 of every
pixel's attention), so the energies move little per step; the asserted numbers are measured, not hoped for."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

import methods.boxdiff as boxdiff  # noqa: F401  (registers the method)
import methods.layout_guidance as layout_guidance  # noqa: F401  (registers the method)
from methods.core import box_attention
from methods.core.attention import controlled
from methods.core.box_attention import (
    BoxProblem,
    CrossAttentionRecorder,
    EnergyDescent,
    check_layout_boxes,
    layout_targets,
    map_factor,
)
from methods.core.inversion import invert_image
from methods.core.latents import encode_prompt
from methods.core.masks import covered_cells
from methods.core.runner import run_comparison
from methods.core.spec import Box, EditInputs, InputError, RunContext
from tests.helpers import assert_same_image, direct_components, seeded_generator

PROMPT = "a street with a red car and a green tree"
BOXES = [Box(0.1, 0.55, 0.5, 0.9, "a red car"), Box(0.6, 0.1, 0.95, 0.8, "a green tree")]
FAST = {"boxdiff": {"refinement_iterations": 2}, "layout_guidance": {}}  # BoxDiff's refinement never converges here
METHODS = {"layout_guidance": layout_guidance.LayoutGuidance, "boxdiff": boxdiff.BoxDiff}
STRENGTH = {"layout_guidance": "guidance_strength", "boxdiff": "step_size"}


def layout_inputs(image=None, boxes=None, prompt: str = PROMPT) -> EditInputs:
    return EditInputs(image=image, prompt=prompt, boxes=list(BOXES if boxes is None else boxes), steps=4)


def run(backbone, name: str, inputs: EditInputs, report=None, **params):
    method = METHODS[name]
    ctx = RunContext(backbone, 0, torch.Generator().manual_seed(0), report or (lambda step, total: None))
    return method().run(ctx, inputs, method.resolve_params({**FAST[name], **params}))


@pytest.fixture
def spy(monkeypatch) -> list[SimpleNamespace]:
    """Every layout_sample call: its per-step logs, the latents its step hook returned, its final latent."""
    calls: list[SimpleNamespace] = []
    real = box_attention.layout_sample

    def wrapped(*args, step_hook=None, **kwargs):
        blended: list[tuple[int, torch.Tensor]] = []

        def hook(index: int, latents: torch.Tensor) -> torch.Tensor:
            out = step_hook(index, latents)
            blended.append((index, out.clone()))
            return out

        latents, logs = real(*args, step_hook=hook if step_hook is not None else None, **kwargs)
        calls.append(SimpleNamespace(logs=logs, blended=blended, latents=latents))
        return latents, logs

    monkeypatch.setattr(box_attention, "layout_sample", wrapped)
    return calls


def shared_state(backbone) -> tuple:
    return backbone.state_fingerprint(), dict(backbone.unet.attn_processors)


def assert_restored(backbone, before: tuple) -> None:
    fingerprint, processors = before
    assert backbone.state_fingerprint() == fingerprint
    assert all(backbone.unet.attn_processors[k] is v for k, v in processors.items())
    assert not any(module._forward_hooks for module in backbone.unet.modules())
    assert not any(p.requires_grad for p in backbone.unet.parameters())
    assert torch.is_grad_enabled()


@pytest.mark.parametrize(("name", "step"), [("layout_guidance", None), ("boxdiff", 20.0)])
def test_one_energy_step_is_a_gradient_step_that_lowers_the_energy(backbone, name, step) -> None:
    """At the first DDIM timestep (t = 751 of 4 steps, abar_t = 0.0557), from seeded noise, one step with each
    method's first-step size (Layout guidance: eta (1 - abar_t) = 30 x 0.9443 = 28.33; BoxDiff: 20 sqrt(1)) lands
    on z - step * grad E (max difference 3e-8 / 7e-9) and lowers the energy by what first order predicts: measured
    Layout guidance 0.592535 -> 0.592315 (drop 2.199e-4, step |g|^2 = 2.197e-4, ratio 1.001), BoxDiff
    3.495399 -> 3.495394 (drop 4.53e-6, predicted 4.84e-6, ratio 0.94: its x100 softmax of nearly uniform maps
    leaves a small gradient). Maps: 3 layers (up_blocks.2) / 5 layers (down_blocks.1 + up_blocks.2), all 8x8."""
    method = METHODS[name]
    prompt, targets, _ = layout_targets(backbone.tokenizer, PROMPT, BOXES)
    guide_class = box_attention_guide(name)
    problem = BoxProblem(targets, guide_class.rounding, head_only=guide_class.head_only)
    guide = guide_class(method.resolve_params(FAST[name]), problem)
    want = map_factor((16, 16))
    recorder = CrossAttentionRecorder(lambda site, f, grid: guide.reads(site, f, grid, want), (16, 16))
    cond, _ = encode_prompt(backbone, prompt)
    z0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    scheduler = backbone.scheduler_copy()
    scheduler.set_timesteps(4)
    t = scheduler.timesteps[0]
    before_state = shared_state(backbone)
    with controlled(backbone.unet, recorder):
        descent = EnergyDescent(backbone, recorder, cond, guide.energy)
        if step is None:
            step = 30.0 * (1 - descent.alpha_bar(t))
        descent.begin(z0)
        energy = descent.measure(t, guide.energy, grad=True)
        (gradient,) = torch.autograd.grad(energy, descent.z)
        before, stepped = descent.descend(t, guide.energy, step)
        after = float(descent.measure(t, guide.energy))
    assert stepped and len(recorder.maps) == (3 if name == "layout_guidance" else 5)  # up_blocks.2 / + down_blocks.1
    assert all(m.shape[1:3] == (8, 8) for m in recorder.maps)
    assert float((descent.result() - (z0 - step * gradient)).abs().max()) < 1e-6
    assert after < before, (before, after)
    predicted = step * float(gradient.pow(2).sum())  # first order: E(z - s g) ~ E(z) - s |g|^2
    assert 0.8 < (before - after) / predicted < 1.2, (before - after, predicted)
    assert_restored(backbone, before_state)


def box_attention_guide(name: str):
    return layout_guidance.LayoutGuide if name == "layout_guidance" else boxdiff.BoxDiffGuide


@pytest.mark.parametrize("name", ["layout_guidance", "boxdiff"])
def test_guidance_raises_the_attention_inside_each_box(backbone, spy, name) -> None:
    """Share of each phrase's attention inside its box at the first step, measured on the denoising forward (after
    that step's guidance) against the unguided run from the same noise. Layout guidance (raw maps of the phrase's
    words; 5 iterations): unguided -> guided car 0.18381 -> 0.18458, tree 0.27983 -> 0.28049, energy at that step
    0.59254 -> 0.59143. BoxDiff (its x100-softmax, smoothed head-word maps; its regular step on all constraints,
    refinement off): car 0.1382221 -> 0.1382328, tree 0.2335098 -> 0.2335125 (float32 noise between the batch-1
    guidance forward and the CFG batch is ~1e-7). The shared UNet is restored afterwards."""
    before_state = shared_state(backbone)
    # BoxDiff's refinement steps lower only the largest inner-box loss (here the car's), which may cost another
    # phrase some share; its regular step, on all constraints at once, is the one measured here
    own = {"refinement_iterations": 0} if name == "boxdiff" else {}
    guided = run(backbone, name, layout_inputs(), **own)
    run(backbone, name, layout_inputs(), **own, **{STRENGTH[name]: 0.0})
    (guided_logs, plain_logs) = (call.logs for call in spy)
    assert guided_logs[0].guided and not plain_logs[0].guided
    for phrase, with_guidance, without in zip(
        ["car", "tree"], guided_logs[0].inside, plain_logs[0].inside, strict=True
    ):
        assert with_guidance > without, (phrase, with_guidance, without)
    assert guided_logs[0].energy_after < guided_logs[0].energy_before
    assert guided.info["energy_after"] < guided.info["energy_before"]
    assert guided_logs[0].energy_after < plain_logs[0].energy_after
    assert set(guided.info["inside-box attention"]) == {"a red car", "a green tree"}
    overlay, caption = guided.extras[0]
    assert caption == "attention maps" and overlay.size == (2 * 128 + 4, 128)
    assert_restored(backbone, before_state)


@pytest.mark.parametrize("name", ["layout_guidance", "boxdiff"])
def test_strength_zero_is_the_plain_pipeline_bit_for_bit(backbone, name) -> None:
    """Guidance strength 0 runs no guidance forward: the hub's run (seed 7, 4 DDIM steps, guidance 7.5) equals
    StableDiffusionPipeline over the same modules with a DDIM scheduler, pixel for pixel (max difference 0)."""
    inputs = layout_inputs()
    params = {name: {STRENGTH[name]: 0.0}}
    hub = run_comparison(backbone, "layout", [name], inputs, seed=7, params=params)
    pipe = StableDiffusionPipeline(**direct_components(backbone))
    pipe.set_progress_bar_config(disable=True)
    direct = pipe(
        prompt=PROMPT, num_inference_steps=4, guidance_scale=7.5, generator=seeded_generator(7), height=128, width=128
    ).images[0]
    assert hub.records[0]["status"] == "ok", hub.records[0]["message"]
    assert_same_image(hub.result(name), direct)


@pytest.mark.parametrize("name", ["layout_guidance", "boxdiff"])
def test_photo_edit_keeps_the_outside_of_the_boxes(backbone, photo, spy, name) -> None:
    """Edit photo (strength 0.8: 3 of 4 steps inverted, then 3 guided sampling steps): after each of the 3 steps
    the latent outside the boxes is the inversion latent of the level reached, exactly (torch.equal on the 123
    outside cells), the final latent outside them is the photo's latent, and after the paste-back every pixel
    outside the boxes is the photo's (59.9 % of the 128x128 image). Inside (133 of 256 latent cells) the edit
    moved the latent from the photo's by mean |diff| 0.44 (Layout guidance) / 0.42 (BoxDiff)."""
    output = run(backbone, name, layout_inputs(photo), mode="edit photo")
    (call,) = spy
    trajectory = invert_image(backbone, photo, PROMPT, 4, 1.0, stop_at=3).trajectory
    region = box_attention.box_region(BOXES, photo.size)
    inside = covered_cells(region, (16, 16), backbone.device).bool()[0, 0]
    assert [index for index, _ in call.blended] == [2, 1, 0]
    for index, latents in call.blended:
        assert torch.equal(latents[..., ~inside], trajectory[index][..., ~inside]), index
    assert torch.equal(call.latents[..., ~inside], trajectory[0][..., ~inside])
    assert float((call.latents - trajectory[0])[..., inside].abs().mean()) > 0.2
    outside = np.asarray(region) == 0
    assert 0.55 < outside.mean() < 0.65
    assert np.array_equal(np.asarray(output.image)[outside], np.asarray(photo)[outside])
    assert output.info["guided steps"].endswith("/3")


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ([], "Draw at least one box"),
        ([Box(0.1, 0.1, 1.2, 0.5, "a red car")], "must lie inside the image"),
        ([Box(0.5, 0.1, 0.4, 0.5, "a red car")], "0 <= x0 < x1 <= 1"),
        ([Box(math.nan, 0.1, 0.4, 0.5, "a red car")], "must lie inside the image"),
        ([Box(0.1, 0.1, 0.4, 0.5, "  ,. ")], "has no phrase"),
        ([Box(0.1, 0.1, 0.4, 0.5, "car")] * 17, "At most 16 boxes"),
    ],
)
def test_unusable_boxes_are_sentences(boxes, message) -> None:
    with pytest.raises(InputError, match=message) as error:
        check_layout_boxes(boxes)
    assert str(error.value).endswith(".")


def test_edit_without_a_photo_and_overlong_prompts_are_input_errors(backbone) -> None:
    with pytest.raises(InputError, match="needs a source photo"):
        run(backbone, "layout_guidance", layout_inputs(), mode="edit photo")
    long_prompt = " ".join(["word"] * 80)
    with pytest.raises(InputError, match="beyond the 77 tokens"):
        run(backbone, "boxdiff", layout_inputs(prompt=long_prompt))


def test_phrases_map_to_their_tokens_and_missing_ones_are_appended(backbone) -> None:
    """ "a green tree" in the prompt is found as a whole (its "a" is not the first "a"); articles are dropped;
    a phrase the prompt lacks is appended after a comma, and its tokens point at the appended words."""
    tokenizer = backbone.tokenizer
    prompt, targets, appended = layout_targets(tokenizer, "a street with a green tree", [*BOXES])
    assert prompt == "a street with a green tree, a red car" and appended == ["a red car"]
    ids = tokenizer(prompt).input_ids
    car, tree = targets
    assert [tokenizer.decode(ids[p]) for p in car.tokens] == ["red", "car"]
    assert [tokenizer.decode(ids[p]) for p in tree.tokens] == ["green", "tree"]
    assert [tokenizer.decode(ids[p]) for p in tree.head] == ["tree"]


def test_an_error_mid_run_restores_the_unet(backbone) -> None:
    """A stop raised from the progress report during guided sampling (as the runner's time budget does) leaves
    the processors, hooks, weights' requires_grad and grad mode as they were."""
    before_state = shared_state(backbone)

    def stop(step: int, total: int) -> None:
        raise RuntimeError("budget spent")

    with pytest.raises(RuntimeError, match="budget spent"):
        run(backbone, "boxdiff", layout_inputs(), report=stop)
    assert_restored(backbone, before_state)
