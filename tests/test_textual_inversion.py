"""Textual Inversion: the denoising loss of the new word falls, the learnt word is a real token of the
prompt (with no training it is exactly its init word), and the shared tokenizer and text encoder are
exactly as before afterwards, also when the run raises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

import methods.textual_inversion as ti
from methods.core import borrow
from methods.core.backbone import Backbone
from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from methods.core.spec import EditInputs, RunContext
from methods.textual_inversion import TOKEN, TextualInversion, target_prompt
from tests.helpers import assert_same_image, direct_components, weights_checksum

SEED = 5


def text_state(backbone: Backbone) -> dict[str, Any]:
    """Everything textual inversion could leave behind in the shared tokenizer and text encoder."""
    tokenizer, encoder = backbone.tokenizer, backbone.text_encoder
    embeddings = encoder.get_input_embeddings()
    return {
        "tokenizer_len": len(tokenizer),
        "has_token": TOKEN in tokenizer.get_vocab(),
        "tokenizer_definition": borrow.vocabulary(tokenizer),  # without per-call truncation/padding
        "ids": tokenizer(f"a photo of {TOKEN}").input_ids,
        "embedding_object": id(embeddings),
        "embedding_shape": tuple(embeddings.weight.shape),
        "embedding_hooks": len(embeddings._forward_hooks),
        "config_vocab_size": encoder.config.vocab_size,
        "vocab_size_attribute": "vocab_size" in vars(encoder),
        "trainable": sum(p.requires_grad for p in encoder.parameters()),
        "weights": weights_checksum(backbone),
        "fingerprint": backbone.state_fingerprint(),
    }


def assert_text_encoder_unchanged(backbone: Backbone, before: dict[str, Any], values: torch.Tensor) -> None:
    assert text_state(backbone) == before
    assert torch.equal(backbone.text_encoder.get_input_embeddings().weight, values)


def hub(backbone: Backbone, inputs: EditInputs, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
    comparison = run_comparison(
        backbone, "reference", ["textual_inversion"], inputs, SEED, params={"textual_inversion": params}
    )
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    return np.asarray(comparison.result("textual_inversion")), record["info"]


def test_loss_falls_and_only_the_new_word_is_trained(backbone: Backbone) -> None:
    inputs = example_inputs("reference", backbone)
    before, values = text_state(backbone), backbone.text_encoder.get_input_embeddings().weight.clone()
    _, info = hub(backbone, inputs, train_steps=15, learning_rate=5e-3)
    # the denoising loss of "<template> <ref>" on 5 fixed (timestep, noise) pairs of the reference's latent;
    # measured on the tiny backbone (seed 5): tiny-v2 1.03393 -> 1.02473 after 15 steps; tiny-v3 (SD-shaped, real
    # CLIP vocabulary) 1.040235 -> 1.037762
    assert info["eval loss after"] < info["eval loss before"] - 0.001
    assert info["prompt"] == "a photo of <ref>, a house"
    assert_text_encoder_unchanged(backbone, before, values)


def test_learnt_vector_moves_and_models_stay_frozen(backbone: Backbone) -> None:
    pipe = backbone.pipeline(StableDiffusionPipeline)
    inputs = example_inputs("reference", backbone)
    latents = ti.encode(backbone, inputs.reference)
    init = ti.init_embedding(pipe, "object")
    before, values = text_state(backbone), backbone.text_encoder.get_input_embeddings().weight.clone()
    unet_weights = weights_checksum(backbone)["unet"]
    generator = torch.Generator("cpu").manual_seed(SEED)
    with backbone.borrowed():  # the runner's owner of shared state removes the word again
        token_id = ti.add_token(pipe, TOKEN, init)
        assert len(backbone.tokenizer) == before["tokenizer_len"] + 1
        learned = ti.learn_embedding(pipe, latents, token_id, init, 10, 5e-3, generator)
    assert len(learned.train_losses) == 10 and all(np.isfinite(learned.train_losses))
    assert float((learned.vector - init).norm()) > 0.05  # measured 0.197 after 10 Adam steps at lr 5e-3
    assert learned.eval_after < learned.eval_before
    assert weights_checksum(backbone)["unet"] == unet_weights
    assert_text_encoder_unchanged(backbone, before, values)


def test_untrained_word_equals_its_init_word(backbone: Backbone) -> None:
    """With 0 steps <ref> is the init word's embedding: the edit equals img2img with that word written out."""
    inputs = example_inputs("reference", backbone)
    inputs.prompt = f"a painting of {TOKEN}"
    ours, info = hub(backbone, inputs, train_steps=0, init_word="a", strength=0.7)
    assert info["eval loss before"] == info["eval loss after"]
    pipe = StableDiffusionImg2ImgPipeline(**direct_components(backbone))
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(SEED)
    direct = pipe(
        prompt="a painting of a",  # the tiny tokenizer has no merges: "a" is one token, like <ref>
        image=inputs.image,
        strength=0.7,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=torch.Generator("cpu").manual_seed(SEED),
    ).images[0]
    assert_same_image(ours, direct)
    trained, _ = hub(backbone, inputs, train_steps=5, init_word="a", learning_rate=0.05, strength=0.7)
    assert not np.array_equal(trained, ours)  # the learnt vector changes the result


@pytest.mark.parametrize("where", ["sampling", "training"])
def test_text_encoder_restored_when_the_run_raises(
    backbone: Backbone, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    inputs = example_inputs("reference", backbone)
    inputs.image = None  # text-to-image
    before, values = text_state(backbone), backbone.text_encoder.get_input_embeddings().weight.clone()

    def explode(*args: object, **kwargs: object) -> None:
        assert TOKEN in backbone.tokenizer.get_vocab()  # the word was added when it failed
        assert backbone.text_encoder.get_input_embeddings().weight.shape[0] == before["embedding_shape"][0] + 1
        raise RuntimeError("boom")

    if where == "sampling":
        monkeypatch.setattr(StableDiffusionPipeline, "__call__", explode)
    else:
        original = torch.optim.Adam.step

        def step_then_explode(self: torch.optim.Optimizer, *args: object, **kwargs: object) -> None:
            original(self, *args, **kwargs)
            explode()

        monkeypatch.setattr(torch.optim.Adam, "step", step_then_explode)
    ctx = RunContext(backbone=backbone, seed=SEED, generator=torch.Generator("cpu").manual_seed(SEED))
    with pytest.raises(RuntimeError, match="boom"), backbone.borrowed():  # as the runner runs it
        TextualInversion().run(ctx, inputs, TextualInversion.resolve_params({"train_steps": 3}))
    assert_text_encoder_unchanged(backbone, before, values)
    assert torch.is_grad_enabled()


def test_prompt_rules() -> None:
    assert target_prompt("") == "a photo of <ref>"
    assert target_prompt("in the snow") == "a photo of <ref>, in the snow"
    assert target_prompt("a <ref> on the beach") == "a <ref> on the beach"


def test_empty_init_word_says_what_to_do(backbone: Backbone) -> None:
    inputs = example_inputs("reference", backbone)
    comparison = run_comparison(
        backbone, "reference", ["textual_inversion"], inputs, SEED, params={"textual_inversion": {"init_word": " "}}
    )
    assert comparison.records[0]["status"] == "skipped" and "init word" in comparison.records[0]["message"]
