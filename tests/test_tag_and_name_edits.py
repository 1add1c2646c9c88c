"""CLAP tags -> LEDITS++ (audio tab) and ImageNet class names -> Prompt-to-Prompt (class tab) on the tiny
backbone, 3 steps: each equals its text method run on the text tab with the prompts/concepts it derives
(same seed); the derived concepts are CLAP's top tags in order, the derived prompts the class names in the
template; user mistakes become skipped cells with a sentence."""

from __future__ import annotations

# isort: off
import methods.clap_ledits, methods.p2p_class_names  # noqa: F401, E401  (registers both methods)
# isort: on

import numpy as np
import pytest

import methods.p2p_class_names as p2p_class_names
from methods.clap_ledits import tag_concepts
from methods.core.audio import DEFAULT_LABELS, clap_tags, load_audio
from methods.core.runner import run_comparison
from methods.core.slots import SOUND_LABELS
from methods.core.spec import Audio, EditInputs, InputError
from tests.helpers import assert_same_image
from tests.test_audio import RATE, noise, tone

SEED = 5
STEPS = 3
LEDITS = {"edit_guidance_scale": 6.0, "skip": 0.2}
BOATHOUSE, CHURCH, GOLDEN_RETRIEVER = 449, 497, 207


def run(backbone, condition: str, method: str, inputs: EditInputs, **params):
    comparison = run_comparison(backbone, condition, [method], inputs, SEED, params={method: params})
    extras = [cell.image for cell in comparison.cells if cell.kind == "extra"]
    return comparison.records[0], comparison, extras


def ok(backbone, condition: str, method: str, inputs: EditInputs, **params):
    record, comparison, extras = run(backbone, condition, method, inputs, **params)
    assert record["status"] == "ok", record["message"]
    return record, comparison.result(method), extras


def audio_inputs(photo, clip: Audio, prompt: str = "") -> EditInputs:
    return EditInputs(image=photo, audio=clip, prompt=prompt, steps=STEPS)


def class_inputs(photo, source: int, target: int) -> EditInputs:
    return EditInputs(image=photo, source_class=source, target_class=target, steps=STEPS)


# -- CLAP tags -> LEDITS++ ---------------------------------------------------------------------------------
def test_clap_ledits_equals_ledits_with_the_tags_as_concepts(backbone, photo) -> None:
    """Per tag (default): the result and the per-concept implicit masks are bit-identical to the text tab's
    LEDITS++ with target prompt "tag1, tag2" split into concepts and the tab's description as source prompt
    (measured difference 0: the same code, seed and inputs). Joined: equal to LEDITS++ with the one
    whole-prompt concept, and a different image from the per-tag edit (measured: up to 255 apart)."""
    clip = Audio(tone(440), RATE)
    backbone.addon("clap")  # loaded first so that the fingerprint covers it
    before = backbone.state_fingerprint()
    record, ours, masks = ok(backbone, "audio", "clap_ledits", audio_inputs(photo, clip, "a house"), **LEDITS)
    assert backbone.state_fingerprint() == before
    tags = [tag for tag, _ in clap_tags(backbone, clip, DEFAULT_LABELS, top_k=2)]
    text = EditInputs(image=photo, prompt=", ".join(tags), source_prompt="a house", steps=STEPS)
    _, theirs, their_masks = ok(backbone, "text", "ledits_pp", text, **LEDITS)
    assert_same_image(ours, theirs)
    assert len(masks) == len(their_masks) == 2
    for mine, other in zip(masks, their_masks, strict=True):
        assert_same_image(mine, other)

    record, joined, masks = ok(
        backbone, "audio", "clap_ledits", audio_inputs(photo, clip, "a house"), concepts="joined", **LEDITS
    )
    assert record["info"]["concepts"] == ", ".join(tags) and len(masks) == 1
    _, theirs, _ = ok(backbone, "text", "ledits_pp", text, split_concepts=False, **LEDITS)
    assert_same_image(joined, theirs)
    assert np.abs(np.asarray(joined, np.int16) - np.asarray(ours, np.int16)).max() > 10


def test_clap_ledits_concepts_are_the_top_tags_in_order(backbone, photo) -> None:
    """The concepts are CLAP's top-k labels, most probable first, from the parameter's vocabulary, else the
    tab's vocabulary; the info shows each tag with its probability; without a description the inversion is
    unconditional."""
    clip = Audio(noise(), RATE)
    vocabulary = ("rain", "thunder", "dog barking", "church bells")
    record, _, masks = ok(
        backbone, "audio", "clap_ledits", audio_inputs(photo, clip), labels=", ".join(vocabulary), top_k=3, **LEDITS
    )
    tags = clap_tags(backbone, clip, vocabulary, top_k=3)
    assert [p for _, p in tags] == sorted((p for _, p in tags), reverse=True)
    assert record["info"]["concepts"] == " | ".join(tag for tag, _ in tags) and len(masks) == 3
    assert record["info"]["tags"] == ", ".join(f"{tag} {p:.2f}" for tag, p in tags)
    assert record["info"]["source prompt"].startswith("(none")

    inputs = audio_inputs(photo, clip)
    inputs[SOUND_LABELS] = "ocean waves, applause"  # the tab's vocabulary, used when the parameter is empty
    record, _, _ = ok(backbone, "audio", "clap_ledits", inputs, top_k=5, **LEDITS)
    assert set(record["info"]["concepts"].split(" | ")) == {"ocean waves", "applause"}
    assert tag_concepts(["rain", "thunder"], "per tag") == ["rain", "thunder"]
    assert tag_concepts(["rain", "thunder"], "joined") == ["rain, thunder"]


def test_clap_ledits_bad_input_gives_a_sentence(backbone, photo) -> None:
    clip = Audio(tone(440), RATE)
    cases = [
        (audio_inputs(photo, clip), {"labels": "rain"}, "at least two"),
        (audio_inputs(photo, clip), {"labels": "rain; hail, thunder", "top_k": 2}, "may not contain ';'"),
        (EditInputs(image=photo, steps=STEPS), {}, "audio clip"),
    ]
    for inputs, params, message in cases:
        record, _, _ = run(backbone, "audio", "clap_ledits", inputs, **params)
        assert record["status"] == "skipped" and message in record["message"], record
        assert record["message"].endswith(".")
    # A silent clip never reaches the method: the audio reader refuses it with what to do.
    with pytest.raises(InputError, match="silent; please check the microphone"):
        load_audio((RATE, np.zeros(RATE, dtype=np.int16)))


# -- ImageNet class names -> Prompt-to-Prompt --------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "mode"), [(CHURCH, "replace"), (GOLDEN_RETRIEVER, "refine")], ids=["same-words", "more-words"]
)
def test_p2p_class_names_equals_p2p_with_the_class_prompts(backbone, photo, target: int, mode: str) -> None:
    """ "a photo of a boathouse" -> "a photo of a church" (5 words each: word swap) and -> "a photo of a golden
    retriever" (6 words: refine) are bit-identical to the text tab's Prompt-to-Prompt with those prompts, that
    edit mode and guidance 7.5 (measured difference 0). The class change is an edit: the result differs from
    the source reconstruction (the first extra cell) by up to 54 (swap) / 81 (refine)."""
    record, ours, extras = ok(backbone, "class", "p2p_class_names", class_inputs(photo, BOATHOUSE, target))
    names = p2p_class_names.class_names()
    assert record["info"]["source prompt"] == "a photo of a boathouse"
    assert record["info"]["target prompt"] == f"a photo of a {names[target]}"
    assert record["info"]["edit mode"] == mode
    text = EditInputs(
        image=photo,
        source_prompt=record["info"]["source prompt"],
        prompt=record["info"]["target prompt"],
        steps=STEPS,
        guidance=7.5,
    )
    _, theirs, their_extras = ok(backbone, "text", "prompt_to_prompt", text, edit_mode=mode)
    assert_same_image(ours, theirs)
    assert len(extras) == len(their_extras)
    for mine, other in zip(extras, their_extras, strict=True):
        assert_same_image(mine, other)
    assert np.abs(np.asarray(ours, np.int16) - np.asarray(extras[0], np.int16)).max() > 10


def test_p2p_class_names_prompts_and_parameters(backbone, photo, monkeypatch) -> None:
    """The template and the first synonym of a name with several; local blend on the class names' words and
    a guidance scale equal the text tab's P2P given those blend words and that guidance."""
    assert p2p_class_names.class_prompts(281, BOATHOUSE, "{name} in the snow") == (
        "tabby in the snow",
        "boathouse in the snow",
    )
    params = {"local_blend": True, "blend_threshold": 0.99, "guidance": 3.0}
    record, ours, _ = ok(backbone, "class", "p2p_class_names", class_inputs(photo, BOATHOUSE, CHURCH), **params)
    text = EditInputs(
        image=photo, source_prompt="a photo of a boathouse", prompt="a photo of a church", steps=STEPS, guidance=3.0
    )
    blend = {"blend_words": "boathouse church", "blend_threshold": 0.99}
    _, theirs, _ = ok(backbone, "text", "prompt_to_prompt", text, edit_mode="replace", **blend)
    assert_same_image(ours, theirs)

    synonyms = [*p2p_class_names.class_names()]
    synonyms[CHURCH] = "church, church building"
    monkeypatch.setattr(p2p_class_names, "class_names", lambda: synonyms)
    assert p2p_class_names.class_name(CHURCH) == "church"
    assert p2p_class_names.class_prompts(BOATHOUSE, CHURCH, "a photo of a {name}")[1] == "a photo of a church"


def test_p2p_class_names_bad_input_gives_a_sentence(backbone, photo) -> None:
    inputs = class_inputs(photo, BOATHOUSE, CHURCH)
    cases = [
        (class_inputs(photo, BOATHOUSE, 1000), {}, "ImageNet class ids run from 0 to 999"),
        (inputs, {"template": "a photo of a cat"}, "must contain {name}"),
        (inputs, {"template": "a {name} by {artist}"}, "only use the placeholder {name}"),
        (inputs, {"template": "a {name"}, "unmatched brace"),
        (class_inputs(photo, BOATHOUSE, GOLDEN_RETRIEVER), {"edit_mode": "replace"}, "same number of words"),
        (EditInputs(image=photo, source_class=BOATHOUSE, steps=STEPS), {}, "target class"),
    ]
    for inputs, params, message in cases:
        record, _, _ = run(backbone, "class", "p2p_class_names", inputs, **params)
        assert record["status"] == "skipped" and message in record["message"], record
