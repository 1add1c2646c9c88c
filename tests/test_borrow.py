"""The one owner of restoring shared state (``methods.core.borrow``): a method that adds a word to the shared
tokenizer leaves the tokenizer and the text encoder's embedding matrix as they were, whether it succeeds or
raises, without restoring anything itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import torch

from methods.core import borrow
from methods.core.examples import example_inputs
from methods.core.registry import register, unregister
from methods.core.runner import run_comparison
from methods.core.slots import IMAGE
from methods.core.spec import Condition, EditInputs, Method, MethodOutput, Paper, RunContext, Strategy

WORD = "<new-word>"


class AddsAWord(Method):
    """A test double, not an editing method: it adds a word to the shared tokenizer, grows the text encoder's
    embedding matrix for it (as textual inversion does), uses it, and returns the source photo; with ``fail``
    set it raises after adding the word. It never removes the word: the runner's ``borrowed()`` does."""

    name = "test_adds_a_word"
    label = "Adds a word (borrow test)"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper("A throwaway method for the shared-state test", 2024, "https://example.org/borrow-test")
    requires = (IMAGE,)
    fail: ClassVar[bool] = False

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone = ctx.backbone
        tokenizer, encoder = backbone.tokenizer, backbone.text_encoder
        tokenizer.add_tokens(WORD)
        encoder.resize_token_embeddings(len(tokenizer))
        with torch.no_grad():
            encoder.get_input_embeddings().weight[-1] = 1.0
        ids = tokenizer(f"a photo of {WORD}", return_tensors="pt").input_ids.to(encoder.device)
        encoder(ids)
        if self.fail:
            raise RuntimeError("boom after adding the word")
        return MethodOutput(inputs.image)


@pytest.fixture
def adds_a_word() -> Iterator[type[AddsAWord]]:
    register(AddsAWord)
    try:
        yield AddsAWord
    finally:
        unregister(AddsAWord.name)
        AddsAWord.fail = False


def text_state(backbone) -> dict[str, Any]:
    tokenizer, embeddings = backbone.tokenizer, backbone.text_encoder.get_input_embeddings()
    return {
        "len": len(tokenizer),
        "vocabulary": borrow.vocabulary(tokenizer),
        "ids": tokenizer(f"a photo of {WORD}").input_ids,
        "embeddings": (id(embeddings), id(embeddings.weight), tuple(embeddings.weight.shape)),
        "rows": embeddings.num_embeddings,
        "vocab_size": backbone.text_encoder.config.vocab_size,
        "fingerprint": backbone.state_fingerprint(),
    }


@pytest.mark.parametrize("fail", [False, True], ids=["ok", "raises"])
def test_a_word_added_by_a_method_is_removed_after_the_run(backbone, adds_a_word, fail: bool) -> None:
    adds_a_word.fail = fail
    before, values = text_state(backbone), backbone.text_encoder.get_input_embeddings().weight.clone()
    assert WORD not in backbone.tokenizer.get_vocab()
    ids = backbone.tokenizer("a red car").input_ids
    decoded = [backbone.tokenizer.decode([i]) for i in ids]
    inputs = example_inputs(Condition.TEXT, backbone)
    record = run_comparison(backbone, Condition.TEXT, [adds_a_word.name], inputs, seed=0).records[0]
    assert record["status"] == ("error" if fail else "ok"), record["message"]
    assert WORD not in backbone.tokenizer.get_vocab()
    # the restored tokenizer encodes and decodes as before (CLIP's decode strips the "</w>" word ends)
    assert backbone.tokenizer("a red car").input_ids == ids
    assert [backbone.tokenizer.decode([i]) for i in ids] == decoded and "</w>" not in "".join(decoded)
    assert text_state(backbone) == before  # len(tokenizer) and the embedding matrix's shape are back
    assert torch.equal(backbone.text_encoder.get_input_embeddings().weight, values)
