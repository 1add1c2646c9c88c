"""CLAP tags -> SDEdit: the hub's training-free baseline for audio-conditioned editing.

Tagging model: CLAP, "Large-scale Contrastive Language-Audio Pretraining with Feature Fusion and
Keyword-to-Caption Augmentation" (Wu et al., 2023), https://arxiv.org/abs/2211.06687. Editing: SDEdit
(Meng et al., 2022, https://arxiv.org/abs/2108.01073). Algorithm: CLAP scores the clip zero-shot against
a vocabulary of everyday sound labels ("the sound of {label}", softmax over the audio-text logits); the
top-k labels are written into a text prompt (optionally around the user's own description of the
photo), and the photo is edited towards that prompt with SDEdit (noise to strength x T, denoise with
Stable Diffusion's image-to-image pipeline).

What it is not: the audio-conditioned methods of the survey ("Sound-guided semantic image manipulation",
Lee et al., CVPR 2022; AudioToken, Yariv et al., 2023) map the audio *embedding* itself into the
generator's conditioning space with a trained audio encoder or adapter, so timbre, loudness and other
qualities that no label names can steer the edit. Here the audio reaches the image only through the
words of the chosen labels, and only labels in the vocabulary can be found. It is the honest
no-training reference those methods should beat.
"""

from __future__ import annotations

from typing import Any

from diffusers import StableDiffusionImg2ImgPipeline

from methods.core.audio import LABELS_PARAM, clap_tags, parse_labels
from methods.core.costs import denoised
from methods.core.registry import register
from methods.core.slots import AUDIO, IMAGE, PROMPT, SOUND_LABELS
from methods.core.spec import (
    Condition,
    EditInputs,
    FloatParam,
    InputError,
    IntParam,
    Method,
    MethodOutput,
    Paper,
    Param,
    RunContext,
    Strategy,
)
from methods.sdedit import sdedit

DEFAULT_TEMPLATE = "{prompt}, {tags}"
DEFAULT_DESCRIPTION = "a photo"  # {prompt} when the tab's prompt box is empty


@register
class ClapSDEdit(Method):
    name = "clap_sdedit"
    label = "CLAP tags → SDEdit"
    condition = Condition.AUDIO
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "Large-scale Contrastive Language-Audio Pretraining with Feature Fusion and Keyword-to-Caption Augmentation",
        2023,
        "https://arxiv.org/abs/2211.06687",
    )
    summary = "Tag the clip zero-shot with CLAP, write the top tags into a prompt, edit the photo with SDEdit."
    params = (
        IntParam("top_k", 2, 1, 5, help="How many of CLAP's most probable sound labels go into the prompt."),
        FloatParam("strength", 0.6, 0.05, 1.0, help="SDEdit strength: how far into the noise the photo is pushed."),
        Param(
            "template",
            "text",
            DEFAULT_TEMPLATE,
            help="Prompt template: {tags} = the top labels joined by commas, {prompt} = the tab's prompt "
            f"(or '{DEFAULT_DESCRIPTION}' when it is empty).",
        ),
        LABELS_PARAM,
    )
    addons = ("clap",)
    requires = (IMAGE, AUDIO)
    optional = (PROMPT, SOUND_LABELS)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 2.0 * denoised(steps, params["strength"])  # SDEdit: int(steps x strength) CFG steps (CLAP is small)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        labels = parse_labels(params["labels"] or inputs[SOUND_LABELS])  # the tab may set a vocabulary
        tags = clap_tags(ctx.backbone, inputs.audio, labels, params["top_k"])
        prompt = fill_template(params["template"], inputs.prompt.strip() or DEFAULT_DESCRIPTION, [t for t, _ in tags])
        pipe = ctx.backbone.pipeline(StableDiffusionImg2ImgPipeline)
        image = sdedit(pipe, ctx, inputs, prompt, params["strength"])
        return MethodOutput(image, info={"tags": ", ".join(f"{t} {p:.2f}" for t, p in tags), "prompt": prompt})


def fill_template(template: str, prompt: str, tags: list[str]) -> str:
    if "{tags}" not in template:
        raise InputError("The prompt template must contain {tags}, where the sound labels go.")
    try:
        return template.format(prompt=prompt, tags=", ".join(tags)).strip()
    except (KeyError, IndexError, ValueError):
        raise InputError("The prompt template may only use the placeholders {prompt} and {tags}.") from None
