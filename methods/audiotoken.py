"""AudioToken: Adaptation of Text-Conditioned Diffusion Models for Audio-to-Image Generation (Yariv et al., 2023).

Interspeech 2023, https://arxiv.org/abs/2305.13050 (code and trained embedder: guyyariv/AudioToken, MIT). A frozen
BEATs audio encoder (Chen et al., 2023, AudioSet fine-tuned iter3+ checkpoint) reads the clip (16 kHz, tiled to
10 s, 128-bin Kaldi filter banks); the outputs of its layers 4, 8 and 12 are concatenated per frame (3 x 768) and a
small trained embedder (two linears + GELU, then factor-graph attention pooling over time) maps them to ONE vector
of the text encoder's width. That vector becomes the embedding of a new placeholder word "<*>", and Stable
Diffusion, text encoder and UNet frozen, is prompted with "a photo of <*>, 4k, high resolution" (the official
``inference.py``: text-to-image, 50 steps, guidance 7.5). The embedder is the only trained part (training-based).

What is changed here: the photo is edited SDEdit-style (``StableDiffusionImg2ImgPipeline`` via
``methods.sdedit.sdedit``) with that prompt instead of generated from noise, and the template may add the tab's
prompt. The token is added with diffusers' ``load_textual_inversion`` (``methods.textual_inversion.add_token``); the
runner's ``borrowed()`` removes it again. The released embedder's attention applies dropout even at inference (a
``F.dropout`` default); it is off here (see ``methods.core.beats``), so a clip always gives the same token.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import StableDiffusionImg2ImgPipeline

from methods.core.audio import per_clip, resample
from methods.core.beats import SAMPLING_RATE, official_clip
from methods.core.costs import denoised
from methods.core.registry import register
from methods.core.slots import AUDIO, IMAGE, PROMPT
from methods.core.spec import (
    Audio,
    Condition,
    EditInputs,
    FloatParam,
    InputError,
    Method,
    MethodOutput,
    Paper,
    Param,
    RunContext,
    Strategy,
)
from methods.sdedit import sdedit
from methods.textual_inversion import add_token

TOKEN = "<*>"  # inference.py's --placeholder_token
DEFAULT_TEMPLATE = "a photo of <*>, {prompt}"  # the official default is "a photo of <*>, 4k, high resolution"
NEAREST = 3


@register
class AudioToken(Method):
    name = "audiotoken"
    label = "AudioToken (BEATs → pseudo-word → SDEdit)"
    condition = Condition.AUDIO
    strategy = Strategy.TRAINING_BASED
    paper = Paper(
        "AudioToken: Adaptation of Text-Conditioned Diffusion Models for Audio-to-Image Generation",
        2023,
        "https://arxiv.org/abs/2305.13050",
    )
    summary = (
        "BEATs hears the clip; AudioToken's trained embedder turns its features into one new word <*>; the photo is "
        "edited towards “a photo of <*>” with SDEdit."
    )
    params = (
        FloatParam("strength", 0.7, 0.05, 1.0, help="SDEdit strength: how far into the noise the photo is pushed."),
        Param(
            "template",
            "text",
            DEFAULT_TEMPLATE,
            help="Prompt: <*> is the audio's word, {prompt} the tab's prompt (dropped with its comma when empty).",
        ),
    )
    addons = ("audiotoken",)
    requires = (IMAGE, AUDIO)
    optional = (PROMPT,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 2.0 * denoised(steps, params["strength"])  # SDEdit: int(steps x strength) CFG steps (BEATs is small)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        prompt = fill_template(params["template"], inputs.prompt)  # 1. the prompt (checked before any model runs)
        pipe = ctx.backbone.pipeline(StableDiffusionImg2ImgPipeline)
        token = audio_token(ctx.backbone, inputs.audio)  # 2. the clip's pseudo-word embedding
        check_width(token, pipe.text_encoder)
        info = describe_token(pipe, token)  # 3. what it resembles, before it joins the vocabulary
        add_token(pipe, TOKEN, token)  # 4. "<*>" -> token (undone by the runner's borrowed())
        image = sdedit(pipe, ctx, inputs, prompt, params["strength"])  # 5. the edit
        return MethodOutput(image, info={"prompt": prompt, **info})


def audio_token(backbone: Any, audio: Audio) -> torch.Tensor:
    """The embedder's vector (text width,) in float32 for a clip, cached per clip."""
    return per_clip(backbone, "audiotoken_tokens", audio, lambda: compute_token(backbone.addon("audiotoken"), audio))


def compute_token(encoder: Any, audio: Audio) -> torch.Tensor:
    """BEATs' layers (3, 7, 11) of the clip at 16 kHz tiled to 10 s -> the FGA embedder -> (width,)."""
    waveform = official_clip(resample(audio, SAMPLING_RATE).waveform)
    return encoder(waveform)[0].float().cpu()


def check_width(token: torch.Tensor, text_encoder: Any) -> None:
    width = text_encoder.get_input_embeddings().weight.shape[1]
    if token.numel() != width:
        raise ValueError(
            f"AudioToken's embedder makes {token.numel()}-wide tokens but the text encoder's words are {width} wide: "
            "the embedder was trained for another Stable Diffusion (768 for SD 1.x, 1024 for SD 2)."
        )


def describe_token(pipe: Any, token: torch.Tensor) -> dict[str, str]:
    """The token's norm beside the vocabulary's, and the words it is closest to (cosine)."""
    with torch.no_grad():
        words = pipe.text_encoder.get_input_embeddings().weight.float().cpu()
        cosines = torch.nn.functional.cosine_similarity(words, token.reshape(1, -1), dim=1)
        best = cosines.topk(min(NEAREST, len(cosines)))
    names = pipe.tokenizer.convert_ids_to_tokens(best.indices.tolist())
    return {
        "token norm": f"{float(token.norm()):.3f} (vocabulary mean {float(words.norm(dim=1).mean()):.3f})",
        "nearest words": ", ".join(f"{n} {c:.3f}" for n, c in zip(names, best.values.tolist(), strict=True)),
    }


def fill_template(template: str, prompt: str) -> str:
    if TOKEN not in template:
        raise InputError(f"The prompt template must contain {TOKEN}, the word that carries the sound.")
    try:
        filled = template.format(prompt=prompt.strip())
    except (KeyError, IndexError, ValueError):
        raise InputError("The prompt template may only use the placeholder {prompt} besides <*>.") from None
    return filled.strip().rstrip(",").strip()
