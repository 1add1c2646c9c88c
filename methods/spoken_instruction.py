"""Spoken instruction: Whisper transcribes what was said, InstructPix2Pix follows it.

Speech recogniser: Whisper, "Robust Speech Recognition via Large-Scale Weak Supervision" (Radford et al., 2022),
https://arxiv.org/abs/2212.04356, an encoder-decoder transformer trained on 680 000 hours of weakly supervised
audio, here openai/whisper-base (72.6M parameters, MIT licence). Editing: InstructPix2Pix, "InstructPix2Pix: Learning
to Follow Image Editing Instructions" (Brooks et al., CVPR 2023), https://arxiv.org/abs/2211.09800.

Algorithm: the clip (already mono and at most 30 s, from the audio reader) is resampled to Whisper's 16 kHz and
turned into 80-bin log-mel features over one 30 s window; Whisper decodes it greedily (no sampling, one beam, no
temperature fallback) after the prompt <|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|>. The
transcript, stripped, becomes the instruction of the hub's InstructPix2Pix method, which is imported and run as it
is (its UNet add-on, its image guidance parameter, the tab's steps, guidance and seed): the result is exactly
InstructPix2Pix's for that typed instruction. Speech in another language can be chosen: Whisper's translate task
then writes the instruction in English, the language InstructPix2Pix was trained on. An empty transcript (no
speech, or only noise) stops the method with a sentence instead of editing with an empty instruction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from methods.core.audio import resample
from methods.core.registry import register
from methods.core.slots import AUDIO, IMAGE
from methods.core.spec import (
    Audio,
    ChoiceParam,
    Condition,
    EditInputs,
    InputError,
    Method,
    MethodOutput,
    Paper,
    RunContext,
)
from methods.instruct_pix2pix import InstructPix2Pix

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

logger = logging.getLogger(__name__)

ENGLISH = "english"
AUTO = "auto-detect"
# Whisper's language names (transformers' TO_LANGUAGE_CODE keys); every choice but English is translated.
LANGUAGES = (ENGLISH, AUTO, "german", "french", "spanish", "italian", "portuguese", "dutch", "polish", "russian")
LANGUAGES += ("chinese", "japanese", "korean", "hindi", "arabic", "turkish")


@dataclass(frozen=True)
class Transcript:
    text: str  # as Whisper's tokenizer decodes it, special tokens skipped, stripped
    language: str  # the language code Whisper decoded with, e.g. "en" (its own detection's for auto-detect)
    task: str  # "transcribe" or "translate"


def whisper_task(language: str) -> str:
    """English is transcribed; any other language (or an undetected one) is translated into English."""
    return "transcribe" if language == ENGLISH else "translate"


def transcribe(backbone: Backbone, audio: Audio, language: str = ENGLISH) -> Transcript:
    """Whisper's greedy transcript of (the first 30 s of) ``audio``, resampled to the processor's rate."""
    import torch
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    model, processor = backbone.addon("whisper")
    extractor = processor.feature_extractor
    waveform = resample(audio, extractor.sampling_rate).waveform  # the extractor pads / cuts to one 30 s window
    features = extractor(waveform, sampling_rate=extractor.sampling_rate, return_tensors="pt").input_features
    parameter = next(model.parameters())
    features = features.to(parameter.device, parameter.dtype)
    task = whisper_task(language)
    with torch.no_grad():
        if language == AUTO:  # Whisper's own detection: the most probable language token after <|startoftranscript|>
            detected = int(model.detect_language(input_features=features).item())
            code = processor.tokenizer.convert_ids_to_tokens(detected).strip("<|>")
            task = "transcribe" if code == "en" else "translate"  # detected English is transcribed as such
        else:
            code = TO_LANGUAGE_CODE[language]
        tokens = model.generate(
            features, language=code, task=task, do_sample=False, num_beams=1, return_timestamps=False
        )
    text = processor.tokenizer.decode(tokens[0].tolist(), skip_special_tokens=True).strip()
    return Transcript(text, code, task)


@register
class SpokenInstruction(Method):
    name = "spoken_instruction"
    label = "Spoken instruction (Whisper → InstructPix2Pix)"
    condition = Condition.AUDIO
    strategy = InstructPix2Pix.strategy  # training-based: both models are used as trained, nothing is tuned
    paper = Paper(
        "Robust Speech Recognition via Large-Scale Weak Supervision", 2022, "https://arxiv.org/abs/2212.04356"
    )
    summary = "Whisper transcribes a spoken instruction (“make it winter”); InstructPix2Pix follows it."
    params = (
        *InstructPix2Pix.params,
        ChoiceParam(
            "spoken_language",
            ENGLISH,
            LANGUAGES,
            help="The language spoken in the clip. English is transcribed; any other (or auto-detect) is "
            "translated into English by Whisper, since InstructPix2Pix follows English instructions.",
        ),
    )
    addons = ("whisper", *InstructPix2Pix.addons)
    requires = (IMAGE, AUDIO)
    optional = InstructPix2Pix.optional

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return InstructPix2Pix.cost(steps, params)  # InstructPix2Pix after Whisper (small next to it)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. what was said
        heard = transcribe(ctx.backbone, inputs.audio, params["spoken_language"])
        instruction = heard.text.strip()
        if not instruction:
            raise InputError(
                "No words were heard in the clip; please record the instruction again, closer to the "
                "microphone (e.g. say “make it winter”), or upload a clip with clear speech."
            )
        logger.info("Whisper heard %r (%s, %s)", instruction, heard.language, heard.task)
        # 2. InstructPix2Pix with the transcript as its instruction, its own parameters, the same seed
        edit = InstructPix2Pix().run(
            ctx,
            replace(inputs, instruction=instruction),
            {p.name: params[p.name] for p in InstructPix2Pix.params},
        )
        info = {"transcript": instruction, "language": heard.language, "task": heard.task, **edit.info}
        return MethodOutput(edit.image, info=info, extras=edit.extras)
