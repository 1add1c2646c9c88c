"""Prompt-to-Prompt (methods/prompt_to_prompt.py) on the tiny backbone, 4 steps: identical prompts give back
the source reconstruction; a word swap hands unchanged words the source's cross-attention maps exactly while
the cross-attention replacement lasts; re-weighting scales one word's maps by the factor; local blending keeps
the latent outside its region equal to the source branch; token positions follow the backbone tokenizer."""

from __future__ import annotations

import pytest
import torch

from methods.core.attention import AttentionController
from methods.core.branches import edit_photo
from methods.core.examples import example_inputs
from methods.core.inversion import INVERSION_KINDS, reconstruct
from methods.core.runner import run_comparison
from methods.core.spec import InputError, RunContext
from methods.core.words import prompt_words
from methods.prompt_to_prompt import PromptToPrompt, plan, token_mapper

STEPS = 4


def inputs_for(backbone, source: str, target: str):
    inputs = example_inputs("text", backbone, steps=STEPS)
    inputs.source_prompt, inputs.prompt = source, target
    return inputs


def params(**override):
    return PromptToPrompt.resolve_params(override)


def run_edit(backbone, inputs, values, record: bool = False, inversion: str = "ddim", **options):
    controller, blend = plan(backbone.tokenizer, inputs, values, record=record)
    ctx = RunContext(backbone=backbone, seed=0, generator=torch.Generator().manual_seed(0))
    edit = edit_photo(
        ctx,
        inputs.image,
        inputs.source_prompt,
        inputs.prompt,
        inputs.steps,
        inputs.guidance,
        controller,
        inversion=inversion,
        inversion_options=options,
        step_hook=blend,
    )
    return edit, controller, blend


@pytest.mark.parametrize("prompt", ["a house on a meadow", "A red House, in the snow!", "an astronaut riding a horse"])
def test_word_positions_follow_the_tokenizer(backbone, prompt: str) -> None:
    tokenizer = backbone.tokenizer
    words, end = prompt_words(tokenizer, prompt)
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length).input_ids
    assert ids[end] == tokenizer.eos_token_id
    per_word = [tokenizer(w, add_special_tokens=False).input_ids for w in prompt.split()]
    assert [ids[p] for _, places in words for p in places] == [i for word in per_word for i in word]
    assert [p for _, places in words for p in places] == list(range(1, end))


def test_token_mapper_alignment(backbone) -> None:
    tokenizer, length = backbone.tokenizer, backbone.tokenizer.model_max_length
    same = prompt_words(tokenizer, "a house on a meadow")
    for mode in ("replace", "refine"):
        assert torch.equal(token_mapper(same, same, mode, length), torch.eye(length))
    # CLIP's BPE: "periwinkle" is 2 tokens (peri, winkle), "vermilion" 3 (ver, mil, ion)
    red, blue = prompt_words(tokenizer, "a periwinkle house"), prompt_words(tokenizer, "a vermilion house")
    swap = token_mapper(red, blue, "replace", length)
    (_, red_places), (_, blue_places) = red[0][1], blue[0][1]
    assert (len(red_places), len(blue_places)) == (2, 3)
    assert torch.allclose(swap[red_places][:, blue_places], torch.full((2, 3), 1 / 3))
    column_mass = swap.sum(dim=0)  # the 2 source tokens spread their maps over the 3 target tokens
    assert torch.allclose(column_mass[blue_places], torch.full((3,), 2 / 3))
    rest = torch.cat([column_mass[: blue_places[0]], column_mass[blue_places[-1] + 1 :]])
    assert torch.equal(rest, torch.ones(length - 3))
    refine = token_mapper(
        prompt_words(tokenizer, "a red house"), prompt_words(tokenizer, "a big red house"), "refine", length
    )
    big = prompt_words(tokenizer, "a big red house")[0][1][1]
    assert refine[:, big].abs().sum() == 0 and refine.sum() == length - len(big)  # new word keeps its own maps
    with pytest.raises(InputError, match="same number of words"):
        token_mapper(red, prompt_words(tokenizer, "a big red house"), "replace", length)


@pytest.mark.parametrize("kind", INVERSION_KINDS)
def test_identical_prompts_reproduce_the_source_reconstruction(backbone, photo, kind: str) -> None:
    prompt = "a house on a meadow"
    inputs = inputs_for(backbone, prompt, prompt)
    inputs.image = photo
    options = {"inner_steps": 3} if kind == "null-text" else {}
    edit, controller, _ = run_edit(backbone, inputs, params(), inversion=kind, **options)
    assert (controller.cross_until, controller.self_until) == (3, 2)
    # The same two-branch sampler with a pass-through controller: the same batch [src_u, tgt_u, src_c, tgt_c].
    ctx = RunContext(backbone=backbone, seed=0, generator=torch.Generator().manual_seed(0))
    passthrough = edit_photo(
        ctx,
        photo,
        prompt,
        prompt,
        STEPS,
        inputs.guidance,
        AttentionController(STEPS),
        inversion=kind,
        inversion_options=options,
    )
    scale = float(passthrough.source.abs().max())
    # The controller leaves the source rows to the same SDPA call: measured difference 0.
    assert float((edit.source - passthrough.source).abs().max()) <= 1e-6 * scale
    if kind == "direct":  # its per-step correction goes to the source branch only (the pivot), not the edit
        return
    # The two-branch source is the plain one-branch reconstruction (batch of 2), up to the float noise of
    # batch-size-dependent CPU kernels (measured 0 on one CPU, 1.1e-6 to 3.7e-6 relative on another). Direct
    # inversion is left out here: its corrections cancel the guided noise exactly only for the batch they were
    # computed with, and at guidance 7.5 on random weights that noise is ~40x the latent (test_inversion.py
    # checks its reconstruction).
    plain = reconstruct(backbone, edit.inversion)
    assert float((passthrough.source - plain).abs().max()) <= 1e-4 * float(plain.abs().max())
    # The target gets exactly the source's maps but applies them as an explicit softmax product instead of
    # SDPA; the float difference grows through the steps (measured relative: 2.4e-6 ddim, 2.3e-6 null-text,
    # 7.3e-6 negative-prompt).
    assert float((edit.target - edit.source).abs().max()) < 1e-4 * scale


def test_word_swap_gives_unchanged_words_the_source_maps(backbone) -> None:
    inputs = inputs_for(backbone, "a red house on a meadow", "a vermilion house on a meadow")
    edit, controller, _ = run_edit(backbone, inputs, params(edit_mode="replace", cross_replace_steps=0.5), record=True)
    source, target = (
        prompt_words(backbone.tokenizer, inputs.source_prompt),
        prompt_words(backbone.tokenizer, inputs.prompt),
    )
    kept = [i for i, (word, _) in enumerate(target[0]) if word != "vermilion"]
    src_places = [p for i in kept for p in source[0][i][1]] + [source[1]]  # + end-of-text
    tgt_places = [p for i in kept for p in target[0][i][1]] + [target[1]]
    assert src_places != tgt_places  # "vermilion" has two tokens more than "red": the positions shift
    assert controller.cross_until == 2 and len(controller.recorded) == STEPS * 16  # SD 1.5's 16 cross layers
    after = []
    for step, _, pair in controller.recorded:
        src, tgt = pair[0][..., src_places], pair[1][..., tgt_places]
        if step < controller.cross_until:
            assert torch.equal(src, tgt)
        else:
            after.append(float((src - tgt).abs().max()))
    assert min(after) > 1e-4  # afterwards the target attends with its own maps (measured min 1.2e-2)
    assert float((edit.target - edit.source).abs().max()) > 1e-2  # the swap changes the result (measured 6.5)


def test_reweighting_scales_the_word_maps(backbone) -> None:
    prompt = "a house in the snow"
    inputs = inputs_for(backbone, prompt, prompt)
    values = params(edit_mode="reweight", reweight_words="snow", reweight_factor=3.0)
    edit, controller, _ = run_edit(backbone, inputs, values, record=True)
    words, _ = prompt_words(backbone.tokenizer, prompt)
    snow = words[-1][1]
    others = [p for p in range(backbone.tokenizer.model_max_length) if p not in snow]
    for step, _, (src, tgt) in controller.recorded:
        if step < controller.cross_until:
            assert torch.allclose(tgt[..., snow], 3.0 * src[..., snow], rtol=1e-5, atol=1e-7)
            assert torch.equal(tgt[..., others], src[..., others])
    assert float((edit.target - edit.source).abs().max()) > 1e-2  # measured 1.6 (latents up to 10)
    with pytest.raises(InputError, match="Re-weighting needs words"):
        plan(backbone.tokenizer, inputs, params(edit_mode="reweight", reweight_words="castle"))


def test_local_blend_keeps_the_source_outside_its_region(backbone) -> None:
    inputs = inputs_for(backbone, "a house on a meadow", "a castle on a meadow")
    # The tiny UNet's random weights attend almost uniformly: the words' pooled maps lie within 0.92-1.0 of
    # their peak, so the paper's threshold 0.3 selects the whole latent (measured coverage 1.0). A threshold
    # of 0.99 gives a partial region on which the blending rule can be checked.
    values = params(edit_mode="replace", blend_words="house, castle", blend_threshold=0.99)
    edit, _, blend = run_edit(backbone, inputs, values)
    mask = blend.mask[0, 0].bool()
    coverage = float(mask.float().mean())
    assert 0.05 < coverage < 0.95, coverage  # measured: 0.46 of the 12x16 latent
    difference = (edit.target - edit.source)[0].abs().amax(dim=0)
    assert float(difference[~mask].max()) == 0.0
    assert float(difference[mask].max()) > 1e-2  # measured 6.6
    with pytest.raises(InputError, match="blend words"):
        plan(backbone.tokenizer, inputs, params(blend_words="tree"))


def test_user_errors_become_skipped_cells(backbone) -> None:
    inputs = inputs_for(backbone, "a house on a meadow", "a castle in the snow at night")
    comparison = run_comparison(
        backbone, "text", ["prompt_to_prompt"], inputs, seed=0, params={"prompt_to_prompt": {"edit_mode": "replace"}}
    )
    record = comparison.records[0]
    assert record["status"] == "skipped" and "same number of words" in record["message"]
