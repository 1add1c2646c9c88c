"""Audio inputs, CLAP zero-shot tags, and the CLAP tags -> SDEdit method."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from diffusers import StableDiffusionImg2ImgPipeline

import methods.clap_sdedit  # noqa: F401  (registers the method)
from methods.core import audio as audio_module
from methods.core.audio import (
    DEFAULT_LABELS,
    clap_scores,
    clap_tags,
    load_audio,
    parse_labels,
    read_audio,
    resample,
)
from methods.core.runner import run_comparison
from methods.core.slots import SOUND_LABELS
from methods.core.spec import Audio, EditInputs, InputError

RATE = 16_000


def tone(frequency: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def noise(seconds: float = 1.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)


# -- reading ----------------------------------------------------------------------------------------
def test_load_audio_int16_stereo_and_float_mono():
    left, right = tone(440), noise()
    stereo = np.stack([left, right], axis=1)
    pcm = np.round(stereo * 32767).astype(np.int16)
    clip = load_audio((RATE, pcm))
    assert clip.sampling_rate == RATE and clip.waveform.dtype == np.float32 and clip.waveform.ndim == 1
    np.testing.assert_allclose(clip.waveform, pcm.astype(np.float64).mean(axis=1) / 32768, atol=1e-6)

    mono = load_audio((22_050, tone(300, rate=22_050).astype(np.float64)))
    np.testing.assert_allclose(mono.waveform, tone(300, rate=22_050), atol=1e-7)

    loud, notes = read_audio((RATE, tone(440) * 4))  # float beyond [-1, 1] is scaled down, with a note
    assert np.abs(loud.waveform).max() == pytest.approx(1.0, abs=1e-3) and notes


def test_load_audio_from_a_wav_file_and_rejections(tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, np.stack([tone(440), tone(440)], axis=1), RATE, subtype="PCM_16")
    clip = load_audio(str(path))
    assert clip.sampling_rate == RATE and len(clip.waveform) == RATE
    np.testing.assert_allclose(clip.waveform, tone(440), atol=2 / 32768)
    assert load_audio({"path": str(path)}).waveform.shape == clip.waveform.shape  # gradio FileData

    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(InputError, match="could not be read as audio"):
        load_audio(str(text))
    with pytest.raises(InputError, match="empty"):
        load_audio((RATE, np.zeros(0, dtype=np.int16)))
    with pytest.raises(InputError, match="too short"):
        load_audio((RATE, tone(440, seconds=0.05)))
    with pytest.raises(InputError, match="silent"):
        load_audio((RATE, np.zeros(RATE, dtype=np.int16)))
    with pytest.raises(InputError):
        load_audio(None)

    long_clip, notes = read_audio((RATE, noise(seconds=40)))
    assert long_clip.seconds == pytest.approx(30.0) and "first 30 s" in notes[0]


def test_resample_to_clap_rate_keeps_the_pitch():
    clip = resample(Audio(tone(1000), RATE), 48_000)
    assert clip.sampling_rate == 48_000 and len(clip.waveform) == 48_000
    spectrum = np.abs(np.fft.rfft(clip.waveform))
    assert np.fft.rfftfreq(len(clip.waveform), 1 / 48_000)[spectrum.argmax()] == pytest.approx(1000, abs=1)


def test_parse_labels():
    assert parse_labels("") == DEFAULT_LABELS and len(DEFAULT_LABELS) == 50
    assert parse_labels(" rain, thunder ,rain,, dog barking") == ("rain", "thunder", "dog barking")
    with pytest.raises(InputError):
        parse_labels("rain")


# -- CLAP tagging -----------------------------------------------------------------------------------
def test_clap_scores_are_deterministic_distributions_that_depend_on_the_clip(backbone, monkeypatch):
    beep, hiss = Audio(tone(440), RATE), Audio(noise(), RATE)
    first = audio_module._compute_scores(backbone, beep, DEFAULT_LABELS)
    second = audio_module._compute_scores(backbone, beep, DEFAULT_LABELS)
    assert first == second  # bit-identical: no random crop, no random "is_longer" flag
    assert sum(first) == pytest.approx(1.0, abs=1e-6) and min(first) > 0
    other = audio_module._compute_scores(backbone, hiss, DEFAULT_LABELS)
    assert max(abs(a - b) for a, b in zip(first, other, strict=True)) > 1e-5

    scores = clap_scores(backbone, beep)
    assert [label for label, _ in scores] == list(DEFAULT_LABELS) and tuple(p for _, p in scores) == first
    tags = clap_tags(backbone, beep, top_k=3)
    assert [p for _, p in tags] == sorted(first, reverse=True)[:3]

    # The second call is served from the cache (the condition cell and the method share one computation).
    monkeypatch.setattr(audio_module, "_compute_scores", lambda *args: pytest.fail("recomputed"))
    assert clap_scores(backbone, Audio(beep.waveform.copy(), RATE)) == scores


def test_long_clip_is_scored_over_all_its_windows(backbone):
    clip = load_audio((RATE, np.concatenate([tone(440, 10), noise(12)])))  # two CLAP windows + a short one
    scores = audio_module._compute_scores(backbone, clip, DEFAULT_LABELS)
    assert scores == audio_module._compute_scores(backbone, clip, DEFAULT_LABELS)
    assert sum(scores) == pytest.approx(1.0, abs=1e-6)


# -- the method -------------------------------------------------------------------------------------
def _record(backbone, inputs: EditInputs, **params) -> dict:
    return run_comparison(backbone, "audio", ["clap_sdedit"], inputs, seed=0, params={"clap_sdedit": params}).records[0]


def test_method_equals_img2img_with_the_reported_prompt(backbone, photo):
    clip = Audio(tone(440), RATE)
    backbone.addon("clap")  # loaded first so that the fingerprint covers it
    before = backbone.state_fingerprint()
    inputs = EditInputs(image=photo, audio=clip, steps=4, guidance=7.5)
    comparison = run_comparison(backbone, "audio", ["clap_sdedit"], inputs, seed=3)
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    top = clap_tags(backbone, clip, DEFAULT_LABELS, top_k=2)
    assert record["info"]["prompt"] == f"a photo, {top[0][0]}, {top[1][0]}"
    assert record["info"]["tags"] == f"{top[0][0]} {top[0][1]:.2f}, {top[1][0]} {top[1][1]:.2f}"
    assert backbone.state_fingerprint() == before

    pipe = backbone.pipeline(StableDiffusionImg2ImgPipeline)
    direct = pipe(
        prompt=record["info"]["prompt"],
        image=photo,
        strength=0.6,
        num_inference_steps=4,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(3),
    ).images[0]
    np.testing.assert_array_equal(np.asarray(comparison.result("clap_sdedit")), np.asarray(direct))


def test_method_params_prompt_and_vocabulary(backbone, photo):
    clip = Audio(noise(), RATE)
    inputs = EditInputs(image=photo, audio=clip, prompt="a small house", steps=2)
    params = {"labels": "rain, thunder, dog barking", "top_k": 1, "template": "{prompt} with the sound of {tags}"}
    record = _record(backbone, inputs, **params)
    assert record["status"] == "ok", record["message"]
    best = clap_tags(backbone, clip, ("rain", "thunder", "dog barking"), top_k=1)[0][0]
    assert record["info"]["prompt"] == f"a small house with the sound of {best}"

    inputs[SOUND_LABELS] = "church bells, ocean waves"  # the tab's vocabulary, used when the param is empty
    record = _record(backbone, inputs, top_k=2)
    assert record["status"] == "ok", record["message"]
    assert set(record["info"]["prompt"].removeprefix("a small house, ").split(", ")) == {"church bells", "ocean waves"}

    for bad in ({"labels": "rain"}, {"template": "no placeholder"}, {"template": "{tags} {oops}"}):
        record = _record(backbone, inputs, **bad)
        assert record["status"] == "skipped", record
    no_audio = EditInputs(image=photo, steps=2)
    record = _record(backbone, no_audio)
    assert record["status"] == "skipped" and "audio clip" in record["message"]
