"""CLAP tags -> LEDITS++: the clip's sounds added to the photo as LEDITS++ edit concepts.

Editing: "LEDITS++: Limitless Image Editing using Text-to-Image Models" (Brack et al., CVPR 2024),
https://arxiv.org/abs/2311.16711. Tagging: CLAP, "Large-scale Contrastive Language-Audio Pretraining with
Feature Fusion and Keyword-to-Caption Augmentation" (Wu et al., 2023), https://arxiv.org/abs/2211.06687.
Algorithm: CLAP scores the clip zero-shot against a vocabulary of sound labels ("the sound of {label}",
softmax over the audio-text logits, ``methods.core.audio.clap_tags``); the top-k labels become LEDITS++
edit concepts. LEDITS++ inverts the photo exactly (edit-friendly DPM-Solver++ inversion, steered by the
tab's optional description of the photo as its source prompt) and then adds each concept with semantic
guidance inside its implicit mask (cross-attention map ∩ largest noise difference), so the photo's
structure is kept and the sound's content appears only where the model places it.

Concepts: by default each tag is its own concept (``concepts="per tag"``): LEDITS++ guides and masks every
concept separately, which is what its multi-concept editing is for, and a clip that sounds like "rain" and
"thunder" gets two masks. ``concepts="joined"`` makes one concept of the tags joined by commas
("rain, thunder"): one mask, one guidance term. The tags keep CLAP's order (most probable first).

Reused, not copied: ``methods.core.audio`` (``clap_tags``, ``parse_labels``) and the hub's LEDITS++ method
(``methods.ledits_pp.LeditsPP.run`` and its parameters, the pipeline, scheduler and masks). What changed:
the edit concepts come from the tags instead of the target prompt, the tab's prompt is the source prompt of
the inversion, and no negative prompt is used (the audio tab has none). Like CLAP → SDEdit, the sound
reaches the image only through the words of the chosen labels (see ``methods/clap_sdedit.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from methods.core.audio import LABELS_PARAM, clap_tags, parse_labels
from methods.core.registry import register
from methods.core.slots import AUDIO, IMAGE, PROMPT, SOUND_LABELS
from methods.core.spec import (
    ChoiceParam,
    Condition,
    EditInputs,
    InputError,
    IntParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)
from methods.ledits_pp import LeditsPP, edit_concepts

CONCEPT_MODES = ("per tag", "joined")
_FIXED = {"split_concepts"}  # LEDITS++ parameters this method sets itself (from ``concepts``)


def tag_concepts(tags: list[str], mode: str) -> list[str]:
    """The LEDITS++ edit concepts of the tags: one per tag (CLAP's order), or one of them all joined."""
    if mode not in CONCEPT_MODES:
        raise ValueError(f"unknown concept mode {mode!r}; known: {', '.join(CONCEPT_MODES)}")
    return list(tags) if mode == "per tag" else [", ".join(tags)]


def ledits_request(
    inputs: EditInputs, concepts: list[str], params: dict[str, Any]
) -> tuple[EditInputs, dict[str, Any]]:
    """The text tab's LEDITS++ inputs and parameters that edit ``inputs`` with exactly ``concepts``.

    The concepts go into the target prompt joined by commas (split again by LEDITS++: one concept per tag) or
    as one whole-prompt concept; the tab's description of the photo becomes the inversion's source prompt.
    """
    split = len(concepts) > 1
    prompt = ", ".join(concepts)
    if edit_concepts(prompt, split) != concepts:  # a label with a ';' would be cut into two concepts
        raise InputError("Sound labels used as edit concepts may not contain ';'; please rename those labels.")
    text_inputs = dataclasses.replace(
        inputs, prompt=prompt, source_prompt=inputs.prompt.strip(), negative_prompt="", slot_values={}
    )
    text_params = {name: value for name, value in params.items() if name in {p.name for p in LeditsPP.params}}
    return text_inputs, {**text_params, "split_concepts": split}


@register
class ClapLedits(Method):
    name = "clap_ledits"
    label = "CLAP tags → LEDITS++"
    condition = Condition.AUDIO
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "LEDITS++: Limitless Image Editing using Text-to-Image Models", 2024, "https://arxiv.org/abs/2311.16711"
    )
    summary = "Tag the clip zero-shot with CLAP; add the top tags to the photo as LEDITS++ concepts (exact inversion)."
    params = (
        IntParam("top_k", 2, 1, 5, help="How many of CLAP's most probable sound labels become edit concepts."),
        ChoiceParam(
            "concepts",
            "per tag",
            CONCEPT_MODES,
            help="per tag = each tag its own concept with its own mask (LEDITS++ multi-concept editing); "
            "joined = one concept of all tags joined by commas.",
        ),
        LABELS_PARAM,
        *(p for p in LeditsPP.params if p.name not in _FIXED),
    )
    addons = ("clap",)
    requires = (IMAGE, AUDIO)
    optional = (PROMPT, SOUND_LABELS)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        concepts = params["top_k"] if params["concepts"] == "per tag" else 1
        return steps * (3.0 + concepts)  # LEDITS++: inversion 2 a step; sampling uncond + each concept

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. tag the clip zero-shot (cached per clip and vocabulary: the condition cell shares it)
        labels = parse_labels(params["labels"] or inputs[SOUND_LABELS])
        tags = clap_tags(ctx.backbone, inputs.audio, labels, params["top_k"])
        # 2. the tags as edit concepts, the tab's description as the inversion's source prompt
        concepts = tag_concepts([tag for tag, _ in tags], params["concepts"])
        text_inputs, text_params = ledits_request(inputs, concepts, params)
        # 3. LEDITS++ as the text tab runs it
        output = LeditsPP().run(ctx, text_inputs, text_params)
        info = {
            "tags": ", ".join(f"{tag} {p:.2f}" for tag, p in tags),
            "source prompt": text_inputs.source_prompt or "(none: unconditional inversion)",
            **output.info,
        }
        return MethodOutput(output.image, info, output.extras)
