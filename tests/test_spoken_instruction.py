"""Spoken instruction (Whisper -> InstructPix2Pix): the edit is InstructPix2Pix's for the transcript, the transcript is
Whisper's greedy decoding of the clip at 16 kHz, an empty transcript is refused with a sentence, no weight changes.

On the tiny backbone Whisper has random weights: its transcripts are garbage bytes, but they are what the real
generate() returns for the clip (measured: they differ between clips and between a resampled and a raw clip)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

import methods.spoken_instruction  # noqa: F401  (registers the method)
from methods import spoken_instruction
from methods.core.registry import get_method
from methods.core.runner import run_comparison
from methods.core.spec import Audio, EditInputs
from methods.spoken_instruction import Transcript, transcribe
from tests.helpers import weights_checksum
from tests.test_registry import check_declarations, check_runs_with_defaults_and_restores_shared_state

RATE = 44_100  # a common recording rate, not Whisper's 16 kHz
SEED = 7
STEPS = 3
IMAGE_GUIDANCE = 1.8


def voice(seconds: float = 2.0, pitch: float = 180.0, rate: int = RATE) -> np.ndarray:
    """A voice-like clip: a few harmonics of ``pitch`` under a 4 Hz syllable envelope."""
    t = np.arange(int(seconds * rate)) / rate
    harmonics = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
    return (0.2 * harmonics * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def whisper_tokens(backbone, waveform: np.ndarray, **generate) -> list[int]:
    """Whisper's generate on a 16 kHz waveform, by hand: the processor's features, greedy decoding."""
    model, processor = backbone.addon("whisper")
    features = processor.feature_extractor(waveform, sampling_rate=16_000, return_tensors="pt").input_features
    options = {"language": "en", "task": "transcribe", **generate}
    return model.generate(features, do_sample=False, num_beams=1, **options)[0].tolist()


def hub(backbone, condition: str, method: str, inputs: EditInputs, **params):
    comparison = run_comparison(backbone, condition, [method], inputs, SEED, params={method: params})
    return comparison, comparison.records[0]


@pytest.fixture(scope="module")
def ran(backbone, photo):
    """The method once through the runner, with the shared state before and after."""
    for addon in get_method("spoken_instruction").addons:  # loaded first, so that the checks cover them
        backbone.addon(addon)
    before = backbone.state_fingerprint(), weights_checksum(backbone)
    generation = backbone.addon("whisper")[0].generation_config.to_dict()
    inputs = EditInputs(image=photo, audio=Audio(voice(), RATE), steps=STEPS, guidance=7.5)
    comparison, record = hub(backbone, "audio", "spoken_instruction", inputs, image_guidance_scale=IMAGE_GUIDANCE)
    assert record["status"] == "ok", record["message"]
    after = backbone.state_fingerprint(), weights_checksum(backbone)
    return {"comparison": comparison, "record": record, "before": before, "after": after, "generation": generation}


def test_result_is_instruct_pix2pix_with_the_transcript(backbone, photo, ran) -> None:
    record = ran["record"]
    transcript = record["info"]["transcript"]
    assert transcript and transcript == transcript.strip()
    assert (record["info"]["language"], record["info"]["task"]) == ("en", "transcribe")
    typed = EditInputs(image=photo, instruction=transcript, steps=STEPS, guidance=7.5)
    direct, direct_record = hub(backbone, "text", "instruct_pix2pix", typed, image_guidance_scale=IMAGE_GUIDANCE)
    assert direct_record["status"] == "ok", direct_record["message"]
    ours = np.asarray(ran["comparison"].result("spoken_instruction"))
    np.testing.assert_array_equal(ours, np.asarray(direct.result("instruct_pix2pix")))  # bit-identical
    other = EditInputs(image=photo, instruction=transcript + " at night", steps=STEPS, guidance=7.5)
    changed, _ = hub(backbone, "text", "instruct_pix2pix", other, image_guidance_scale=IMAGE_GUIDANCE)
    assert not np.array_equal(ours, np.asarray(changed.result("instruct_pix2pix")))  # the words do steer it


def test_transcript_is_whisper_greedy_on_the_clip_at_16_khz(backbone, ran) -> None:
    model, processor = backbone.addon("whisper")
    at_16k = resample_poly(voice().astype(np.float64), 160, 441).astype(np.float32)  # 44.1 kHz -> 16 kHz
    tokens = whisper_tokens(backbone, at_16k)
    assert ran["record"]["info"]["transcript"] == processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    clip = Audio(voice(), RATE)
    assert transcribe(backbone, clip) == transcribe(backbone, clip)  # deterministic
    # The method hears the clip: a wrongly read rate, or another clip, gives other tokens (measured on the tiny).
    assert whisper_tokens(backbone, voice()) != tokens
    assert whisper_tokens(backbone, resample_poly(voice(pitch=320.0), 160, 441).astype(np.float32)) != tokens


def test_another_language_is_translated_into_english(backbone) -> None:
    _, processor = backbone.addon("whisper")
    clip = Audio(voice(), RATE)
    german = transcribe(backbone, clip, "german")
    tokens = whisper_tokens(backbone, resample_poly(voice(), 160, 441), language="de", task="translate")
    assert german == Transcript(processor.tokenizer.decode(tokens, skip_special_tokens=True).strip(), "de", "translate")
    detected = transcribe(backbone, clip, "auto-detect")
    model = backbone.addon("whisper")[0]
    assert f"<|{detected.language}|>" in model.generation_config.lang_to_id
    assert detected.task == ("transcribe" if detected.language == "en" else "translate")


def test_empty_transcript_is_refused_with_a_sentence(backbone, photo, monkeypatch) -> None:
    heard: list[Audio] = []

    def silent_recogniser(backbone, audio: Audio, language: str = "english") -> Transcript:
        heard.append(audio)
        return Transcript(" \n\t ", "en", "transcribe")

    monkeypatch.setattr(spoken_instruction, "transcribe", silent_recogniser)
    inputs = EditInputs(image=photo, audio=Audio(voice(), RATE), steps=2)
    _, record = hub(backbone, "audio", "spoken_instruction", inputs)
    assert record["status"] == "skipped"
    assert record["message"].startswith("No words were heard in the clip; please record the instruction again")
    assert len(heard) == 1 and heard[0] is inputs.audio


def test_weights_and_shared_state_are_unchanged(backbone, ran) -> None:
    (state_before, weights_before), (state_after, weights_after) = ran["before"], ran["after"]
    assert {"unet", "text_encoder", "vae", "addon:whisper:0", "addon:instruct_pix2pix_unet:0"} <= set(weights_before)
    assert {k: weights_after[k] for k in weights_before} == weights_before
    assert state_after == state_before
    model = backbone.addon("whisper")[0]
    assert model.generation_config.to_dict() == ran["generation"]  # generate() left no language or task behind
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_registry_declarations_and_example_run(backbone) -> None:
    method = get_method("spoken_instruction")
    check_declarations(method)
    check_runs_with_defaults_and_restores_shared_state(backbone, method)  # the tab's example clip (rain)


def test_full_builder_writes_whisper_base_with_its_real_ids(tmp_path) -> None:
    """The full-size piece on a dry run (configs, processor, no weights): openai/whisper-base's sizes and ids."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    from methods.core import fullsize
    from methods.core.addons import full_speech, get_addon_spec

    spec = get_addon_spec("whisper")
    assert (spec.repo, spec.licence, spec.non_commercial) == (
        "openai/whisper-base",
        "Apache 2.0 (model card; Whisper's code is MIT)",
        False,
    )
    full_speech.build_whisper(tmp_path, fullsize.Writer(dtype=torch.float32, dry_run=True, root=tmp_path))
    config = WhisperConfig.from_pretrained(tmp_path)
    assert (config.d_model, config.encoder_layers, config.decoder_layers, config.vocab_size) == (512, 6, 6, 51865)
    with fullsize.meta():
        model = WhisperForConditionalGeneration(config)
    model.tie_weights()
    assert sum(p.numel() for p in model.parameters()) == 72_593_920  # whisper-base's parameter count
    tokenizer = WhisperProcessor.from_pretrained(tmp_path).tokenizer
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|notimestamps|>"])
    assert ids == [50257, 50258, 50259, 50363] and len(tokenizer) == 51865
    generation = model.generation_config.from_pretrained(tmp_path)
    assert generation.task_to_id == {"transcribe": 50359, "translate": 50358} and len(generation.lang_to_id) == 99
    assert (
        generation.decoder_start_token_id == 50258 and generation.suppress_tokens == full_speech.WHISPER_BASE_SUPPRESS
    )
