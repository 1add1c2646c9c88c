"""Audio inputs: reading any upload into mono float audio, and zero-shot tagging with CLAP.

CLAP ("Large-scale Contrastive Language-Audio Pretraining with Feature Fusion and Keyword-to-Caption
Augmentation", Wu et al., 2023, https://arxiv.org/abs/2211.06687) embeds audio and text in one space;
zero-shot tagging scores a clip against "the sound of {label}" for every label of a vocabulary and takes
the softmax of the audio-text logits. The scores are cached per (backbone, clip, labels), so the
audio tab's condition cell and the methods that use the tags share one computation.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from methods.core.limits import MAX_LABELS, at_most, is_number, shown
from methods.core.lru import LRU
from methods.core.spec import Audio, InputError, Param

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

logger = logging.getLogger(__name__)

MAX_SECONDS = 30.0  # longer clips are trimmed to their start
MIN_SECONDS = 0.25
SILENCE_PEAK = 1e-4  # -80 dBFS: below this the clip is treated as silent
PROMPT_TEMPLATE = "the sound of {label}"

# fmt: off
DEFAULT_LABELS: tuple[str, ...] = (
    "dog barking", "cat meowing", "birds chirping", "rooster crowing", "cow mooing", "horse neighing",
    "frogs croaking", "crickets chirping", "insects buzzing", "rain", "thunder", "wind blowing",
    "ocean waves", "a flowing stream", "a waterfall", "fire crackling", "footsteps", "people talking",
    "a crowd cheering", "applause", "children playing", "a baby crying", "laughter", "someone snoring",
    "a car engine", "car horn honking", "traffic noise", "a train passing", "an airplane flying overhead",
    "a helicopter", "a motorcycle", "a siren", "church bells", "a clock ticking", "a door knocking",
    "glass breaking", "keyboard typing", "a vacuum cleaner", "a chainsaw", "fireworks", "gunshots",
    "piano", "acoustic guitar", "violin", "drums", "a flute", "people singing", "electronic dance music",
    "an orchestra", "silence in a quiet room",
)
# fmt: on


# -- reading ----------------------------------------------------------------------------------------
def read_audio(value: Any, max_seconds: float = MAX_SECONDS) -> tuple[Audio, list[str]]:
    """Any upload -> (mono float32 audio in [-1, 1] at its own rate, notes on what was changed).

    Accepts a gradio numpy tuple ``(sampling_rate, array)`` (int16/int32/uint8/float, mono ``(n,)`` or
    multi-channel ``(n, channels)``), a file path or gradio FileData dict, raw file bytes, or an Audio.
    Raises InputError for unreadable files, empty, too short or silent clips; trims clips longer than
    ``max_seconds`` and says so in the notes.
    """
    notes: list[str] = []
    if value is None:
        raise InputError("Please record or upload an audio clip.")
    duration: float | None = None
    if isinstance(value, Audio):
        rate, samples = value.sampling_rate, value.waveform
    elif isinstance(value, tuple | list) and len(value) == 2 and isinstance(value[1], np.ndarray):
        rate, samples = value
    else:
        rate, samples, duration = _read_file(value, max_seconds)
    if not is_number(rate) or not math.isfinite(rate):
        raise InputError(f"The audio's sampling rate must be a number of Hz; got {shown(rate)}.")
    rate = int(rate)
    if not 1_000 <= rate <= 384_000:
        raise InputError(f"The audio's sampling rate ({rate} Hz) is not plausible; please upload a normal recording.")
    waveform = _to_mono(_to_float(np.asarray(samples), notes))
    seconds = duration if duration is not None else len(waveform) / rate
    if seconds < MIN_SECONDS:
        raise InputError(
            f"The audio clip is too short ({seconds:.2f} s); please use at least {MIN_SECONDS} s of sound."
        )
    if seconds > max_seconds:
        waveform = waveform[: int(max_seconds * rate)]
        notes.append(f"The clip is {seconds:.1f} s long; only its first {max_seconds:g} s are used.")
    if float(np.abs(waveform).max()) < SILENCE_PEAK:
        raise InputError("The audio clip is silent; please check the microphone or upload another clip.")
    for note in notes:
        logger.info(note)
    return Audio(np.ascontiguousarray(waveform, dtype=np.float32), rate), notes


def load_audio(value: Any, max_seconds: float = MAX_SECONDS) -> Audio:
    """:func:`read_audio` without the notes (they are logged)."""
    return read_audio(value, max_seconds)[0]


def _read_file(value: Any, max_seconds: float) -> tuple[int, np.ndarray, float]:
    """(sampling rate, at most ``max_seconds`` of samples, the whole file's duration in seconds)."""
    import soundfile

    if isinstance(value, dict) and "path" in value:  # gradio FileData
        value = value["path"]
    if isinstance(value, bytes):
        source: Any = io.BytesIO(value)
    elif isinstance(value, str | Path):
        source = str(value)
        if not Path(source).is_file():
            raise InputError("The audio file is gone from the server; please upload it again.")
    else:
        raise InputError("The audio is not a file; please upload a WAV, FLAC, OGG or MP3 file.")
    try:
        with soundfile.SoundFile(source) as clip:  # decode only what is used: the first max_seconds
            rate, total = clip.samplerate, clip.frames
            used = min(total, int(max_seconds * rate)) if total > 0 and rate > 0 else -1
            samples = clip.read(used, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, TypeError, ValueError):  # their messages name the server path
        raise InputError("The file could not be read as audio. Please upload a WAV, FLAC, OGG or MP3 file.") from None
    return rate, samples, (total / rate if rate > 0 and total > 0 else len(samples) / max(rate, 1))


def _to_mono(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        if samples.shape[1] <= 8:  # (samples, channels): gradio and soundfile's layout
            return samples.mean(axis=1)
        if samples.shape[0] <= 8:  # (channels, samples)
            return samples.mean(axis=0)
    raise InputError(f"The audio has an unexpected shape {samples.shape}; expected mono or a few channels.")


def _to_float(samples: np.ndarray, notes: list[str]) -> np.ndarray:
    """Integer PCM -> [-1, 1] by its full scale; float stays, scaled down only if it exceeds 1."""
    if samples.size == 0:
        raise InputError("The audio clip is empty; please record or upload some sound.")
    dtype = samples.dtype
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        half = (float(info.max) + 1.0) / 2.0 if dtype.kind == "u" else -float(info.min)
        offset = half if dtype.kind == "u" else 0.0
        return ((samples.astype(np.float64) - offset) / half).astype(np.float32)
    if dtype.kind != "f":
        raise InputError(f"Audio samples of type {dtype} are not supported; please upload PCM or float audio.")
    waveform = samples.astype(np.float32)
    if not np.isfinite(waveform).all():
        raise InputError("The audio contains invalid (NaN or infinite) samples; please upload another clip.")
    peak = float(np.abs(waveform).max(initial=0.0))
    if peak > 1.0:
        notes.append(f"The float samples peak at {peak:.2f}; the clip was scaled into [-1, 1].")
        waveform = waveform / peak
    return waveform


def resample(audio: Audio, rate: int) -> Audio:
    """Polyphase resampling (scipy ``resample_poly``) to ``rate`` Hz."""
    if audio.sampling_rate == rate:
        return audio
    from scipy.signal import resample_poly

    g = math.gcd(audio.sampling_rate, rate)
    waveform = resample_poly(audio.waveform.astype(np.float64), rate // g, audio.sampling_rate // g)
    return Audio(np.clip(waveform, -1.0, 1.0).astype(np.float32), rate)


def audio_digest(audio: Audio) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(audio.waveform, dtype=np.float32).tobytes())
    digest.update(str(audio.sampling_rate).encode())
    return digest.hexdigest()


def per_clip(backbone: Backbone, name: str, audio: Audio, compute: Callable[[], Any]) -> Any:
    """``compute()`` for this clip, cached by the clip's digest in the backbone's cache ``name`` (what a method
    derives from the sound is shared by its reruns and by the other methods that use it)."""
    cache = backbone.cache(name, LRU)
    key = audio_digest(audio)
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.put(key, value)
    return value


# -- CLAP tagging -----------------------------------------------------------------------------------
# The vocabulary parameter of every CLAP-tagging method ("" = the tab's SOUND_LABELS, else DEFAULT_LABELS).
LABELS_PARAM = Param(
    "labels",
    "text",
    "",
    label="sound labels",
    help="Comma-separated vocabulary CLAP chooses from; empty = the tab's tag vocabulary, or else the built-in 50 "
    "everyday sounds.",
)


def parse_labels(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """A comma-separated vocabulary (or a sequence); empty means :data:`DEFAULT_LABELS`."""
    items = text.split(",") if isinstance(text, str) else list(text or [])
    labels = tuple(dict.fromkeys(item.strip() for item in items if item and item.strip()))
    if not labels:
        return DEFAULT_LABELS
    if len(labels) < 2:
        raise InputError("Give at least two comma-separated sound labels (the tags compete with each other).")
    at_most(labels, MAX_LABELS, "sound labels", "Each label is scored against the clip; keep the vocabulary short.")
    return labels


def score_cache(backbone: Backbone) -> LRU:
    """The backbone's CLAP score cache, keyed by (clip digest, labels) (owned by the backbone, dropped with it)."""
    return backbone.cache("clap_scores", LRU)


def clap_scores(backbone: Backbone, audio: Audio, labels: Sequence[str] = DEFAULT_LABELS) -> list[tuple[str, float]]:
    """Zero-shot probabilities of every label (softmax over CLAP's logits), in vocabulary order. Cached."""
    labels = tuple(labels)
    key = (audio_digest(audio), labels)
    cache = score_cache(backbone)
    scores = cache.get(key)
    if scores is None:
        scores = _compute_scores(backbone, audio, labels)
        cache.put(key, scores)
    return list(zip(labels, scores, strict=True))


def clap_tags(
    backbone: Backbone, audio: Audio, labels: Sequence[str] = DEFAULT_LABELS, top_k: int = 3
) -> list[tuple[str, float]]:
    """The ``top_k`` most probable labels with their probabilities, best first."""
    ranked = sorted(clap_scores(backbone, audio, labels), key=lambda item: -item[1])
    return ranked[: max(1, top_k)]


def _compute_scores(backbone: Backbone, audio: Audio, labels: tuple[str, ...]) -> tuple[float, ...]:
    import torch

    model, processor = backbone.addon("clap")
    extractor = processor.feature_extractor
    waveform = resample(audio, extractor.sampling_rate).waveform
    # CLAP sees at most `nb_max_samples` (10 s) at once and would crop longer audio at random: split the
    # clip into consecutive windows instead and average their probabilities, weighted by duration.
    window = int(extractor.nb_max_samples)
    windows = [waveform[i : i + window] for i in range(0, len(waveform), window)]
    weights = torch.tensor([len(w) for w in windows], dtype=torch.float64)
    fusion = bool(getattr(model.config.audio_config, "enable_fusion", False))
    features = extractor(
        windows,
        sampling_rate=extractor.sampling_rate,
        truncation="fusion" if fusion else "rand_trunc",  # no window is longer than 10 s: no random crop
        return_tensors="pt",
    )
    # The extractor marks a random short clip as "longer" for fused models; no window is longer here.
    is_longer = torch.zeros(len(windows), 1, dtype=torch.bool)
    text = processor.tokenizer(
        [PROMPT_TEMPLATE.format(label=label) for label in labels], padding=True, return_tensors="pt"
    )
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(
            input_ids=text["input_ids"].to(device),
            attention_mask=text["attention_mask"].to(device),
            input_features=features["input_features"].to(device, next(model.parameters()).dtype),
            is_longer=is_longer.to(device),
        ).logits_per_audio
    probabilities = logits.double().softmax(dim=-1).cpu()  # (windows, labels)
    mean = (probabilities * weights[:, None]).sum(dim=0) / weights.sum()
    return tuple(float(p) for p in mean)


def spectrogram(audio: Audio, size: tuple[int, int]) -> Image.Image:
    """A log-magnitude spectrogram picture of the clip (for the condition cell)."""
    from scipy.signal import spectrogram as scipy_spectrogram

    _, _, power = scipy_spectrogram(audio.waveform, fs=audio.sampling_rate, nperseg=512, noverlap=384)
    log_power = np.log10(power + 1e-10)
    low, high = np.percentile(log_power, [5, 99.5])
    scaled = np.clip((log_power - low) / max(high - low, 1e-6), 0, 1)[::-1]
    picture = Image.fromarray((scaled * 255).astype(np.uint8), "L").resize(size)
    return ImageOps.colorize(picture, black=(10, 10, 40), white=(255, 220, 80), mid=(200, 40, 120))
