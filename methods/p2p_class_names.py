"""ImageNet class names through Prompt-to-Prompt: SD-based class translation for the class tab.

Editing: "Prompt-to-Prompt Image Editing with Cross Attention Control" (Hertz et al., ICLR 2023),
https://arxiv.org/abs/2208.01626, on Stable Diffusion. Algorithm: the source and target ImageNet classes
are written into prompts with one template, "a photo of a {name}" -> source prompt "a photo of a tabby",
target prompt "a photo of a golden retriever" (the class's name from ``methods.core.imagenet``; the first
comma-separated synonym if a name lists several). The photo is inverted with the source prompt and both
prompts are denoised together from that noise; the target branch takes the source branch's cross-attention
maps (token to token) for the first ``cross_replace_steps`` of the steps and its self-attention maps in the
low-resolution layers for the first ``self_replace_steps``, so the layout of the photo stays and the
object changes class. Edit mode ``auto``: a *word swap* (P2P "replace") when both prompts have the same
number of words (the swapped word's maps are spread over the new word's tokens if their token counts
differ), else *refinement* (words kept from the source take their old maps; the new class's words keep
their own). ``local_blend`` turns on P2P's local blending on the two class names' words.

It lets the class tab compare a text-to-image model driven by class *names* with the class-conditional DiT
methods (DDIB and friends), which condition on class *ids*. Reused, not copied: ``methods.prompt_to_prompt``
(``PromptToPrompt.run``: its controller, token mapper, inversion kinds, local blend and its parameters) and
``methods.core.imagenet`` (``class_index``, ``class_names``). What changed: the prompts are derived from the
classes, the edit mode can be chosen from the word counts, and the guidance scale is a parameter because the
class tab has no guidance slider.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Any

from methods.core.costs import branch_edit_cost
from methods.core.imagenet import class_index, class_names
from methods.core.registry import register
from methods.core.slots import IMAGE, SOURCE_CLASS, TARGET_CLASS
from methods.core.spec import (
    BoolParam,
    ChoiceParam,
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
from methods.core.words import prompt_words
from methods.prompt_to_prompt import P2P_PARAMS, PromptToPrompt

DEFAULT_TEMPLATE = "a photo of a {name}"
EDIT_MODES = ("auto", "replace", "refine")
_SHARED = ("cross_replace_steps", "self_replace_steps", "blend_threshold")  # P2P parameters offered as they are


def class_name(index: int) -> str:
    """The class's name for a prompt: its first comma-separated synonym."""
    return class_names()[index].split(",")[0].strip()


def fill_template(template: str, name: str) -> str:
    """``template`` with ``{name}`` replaced by the class name (the only placeholder allowed)."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError:
        raise InputError("The prompt template has an unmatched brace; write it like “a photo of a {name}”.") from None
    if "name" not in fields:
        raise InputError(
            "The prompt template must contain {name}, where the class name goes, e.g. “a photo of a {name}”."
        )
    if fields != {"name"}:
        raise InputError("The prompt template may only use the placeholder {name}, e.g. “a photo of a {name}”.")
    return template.format(name=name).strip()


def class_prompts(source: int, target: int, template: str) -> tuple[str, str]:
    """(source prompt, target prompt) of two ImageNet class ids."""
    return fill_template(template, class_name(source)), fill_template(template, class_name(target))


def choose_mode(tokenizer: Any, source_prompt: str, target_prompt: str, mode: str) -> str:
    """``auto``: replace (word swap) when both prompts have as many words, else refine."""
    if mode != "auto":
        return mode
    same = len(prompt_words(tokenizer, source_prompt)[0]) == len(prompt_words(tokenizer, target_prompt)[0])
    return "replace" if same else "refine"


def p2p_params(params: dict[str, Any], mode: str, names: tuple[str, str]) -> dict[str, Any]:
    """The text tab's Prompt-to-Prompt parameters for this edit (blend words = both class names' words)."""
    values = {name: params[name] for name in (*_SHARED, "inversion")}
    values.update(edit_mode=mode, blend_words=" ".join(names) if params["local_blend"] else "")
    return PromptToPrompt.resolve_params(values)


@register
class P2PClassNames(Method):
    name = "p2p_class_names"
    label = "Prompt-to-Prompt (class names)"
    condition = Condition.CLASS
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "Prompt-to-Prompt Image Editing with Cross Attention Control", 2023, "https://arxiv.org/abs/2208.01626"
    )
    summary = (
        "Write both ImageNet class names into prompts; edit the photo from one to the other with Prompt-to-Prompt."
    )
    params = (
        Param(
            "template",
            "text",
            DEFAULT_TEMPLATE,
            help="Prompt template for both classes: {name} = the class name (its first synonym).",
        ),
        ChoiceParam(
            "edit_mode",
            "auto",
            EDIT_MODES,
            help="auto = word swap when both prompts have as many words, else refine; replace = word swap; "
            "refine = kept words take the source's maps, new words keep their own.",
        ),
        *(p for p in P2P_PARAMS if p.name in _SHARED),
        BoolParam("local_blend", False, help="Let only the region the two class names attend to change (P2P blend)."),
        FloatParam(
            "guidance",
            7.5,
            1.0,
            15.0,
            step=0.5,
            help="Classifier-free guidance of both branches (the class tab has no guidance slider; P2P uses 7.5).",
        ),
        *(p for p in PromptToPrompt.params if p.name == "inversion"),
    )
    requires = (IMAGE, SOURCE_CLASS, TARGET_CLASS)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return branch_edit_cost(params["inversion"], steps)  # Prompt-to-Prompt: inversion, [src, tgt] x CFG

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. class ids -> names -> prompts
        source, target = class_index(inputs.source_class), class_index(inputs.target_class)
        source_prompt, target_prompt = class_prompts(source, target, params["template"])
        # 2. the edit mode from the word counts, and Prompt-to-Prompt's own parameters
        mode = choose_mode(ctx.backbone.tokenizer, source_prompt, target_prompt, params["edit_mode"])
        values = p2p_params(params, mode, (class_name(source), class_name(target)))
        # 3. Prompt-to-Prompt as the text tab runs it
        text_inputs = dataclasses.replace(
            inputs, source_prompt=source_prompt, prompt=target_prompt, guidance=params["guidance"]
        )
        output = PromptToPrompt().run(ctx, text_inputs, values)
        info = {"source prompt": source_prompt, "target prompt": target_prompt, "edit mode": mode, **output.info}
        return MethodOutput(output.image, info, output.extras)
