"""Prompt-to-Prompt Image Editing with Cross Attention Control (Hertz et al., ICLR 2023).

https://arxiv.org/abs/2208.01626 — The cross-attention maps of a text-to-image model decide which pixels
each word paints. Prompt-to-Prompt denoises the source prompt and the edited prompt together from the same
noise and, for the first part of the steps, hands the edited branch the source branch's maps: its
cross-attention maps, mapped token to token (*replace*: a swapped word takes the maps of the word it
replaces; *refine*: words kept from the source take their old maps, added words keep their own;
*re-weight*: refine, then chosen words' maps are scaled by a factor), and its self-attention maps in the
low-resolution layers. *Local blending* keeps the latent outside the region that chosen words attend to
equal to the source branch. On a photo both branches start from its inversion with the source prompt
(DDIM here; null-text inversion in its own grid entry), so the source branch is the photo's reconstruction.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from methods.core.attention import AttentionController, Site, attend, attention_probs, steps_until
from methods.core.branches import BranchEdit, run_controller
from methods.core.costs import branch_edit_cost
from methods.core.images import mask_overlay
from methods.core.inversion import INVERSION_HELP, INVERSION_KINDS
from methods.core.registry import register
from methods.core.slots import IMAGE, PROMPT, SOURCE_PROMPT
from methods.core.spec import (
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
from methods.core.words import Words, positions, prompt_words, word_set

EDIT_MODES = ("refine", "replace", "reweight")
SELF_REPLACE_MAX_TOKENS = 16 * 16  # P2P replaces self-attention only in layers of at most 16x16 tokens
BLEND_START = 0.2  # local blending starts after this fraction of the steps (P2P: 0.2)


def token_mapper(source: tuple[Words, int], target: tuple[Words, int], mode: str, length: int) -> torch.Tensor:
    """M (length x length): target maps = source maps @ M. An all-zero column = a target token keeps its own."""
    (src_words, src_end), (tgt_words, tgt_end) = source, target
    mapper = torch.zeros(length, length)
    mapper[0, 0] = 1.0  # start-of-text
    for m in range(length - tgt_end):  # end-of-text and padding, aligned from the end-of-text token on
        mapper[min(src_end + m, length - 1), tgt_end + m] = 1.0
    if mode == "replace":
        if len(src_words) != len(tgt_words):
            raise InputError(
                f"Word swap needs prompts with the same number of words ({len(src_words)} vs {len(tgt_words)}); "
                "change words one for one, or pick the refine mode."
            )
        pairs = zip(src_words, tgt_words, strict=True)
    else:  # refine / reweight: words the target keeps from the source, aligned as in a diff
        matcher = difflib.SequenceMatcher(None, [w for w, _ in src_words], [w for w, _ in tgt_words], autojunk=False)
        pairs = ((src_words[b.a + k], tgt_words[b.b + k]) for b in matcher.get_matching_blocks() for k in range(b.size))
    for (_, src_places), (_, tgt_places) in pairs:
        if len(src_places) == len(tgt_places) or mode != "replace":
            for s, t in zip(src_places, tgt_places, strict=False):
                mapper[s, t] = 1.0
        elif tgt_places:  # a swapped word of another token count: its maps spread over the new word's tokens
            mapper[torch.tensor(src_places)[:, None], torch.tensor(tgt_places)] = 1.0 / len(tgt_places)
    return mapper


class PromptToPromptController(AttentionController):
    """Edits the target's conditional half. Batch: [src_uncond, tgt_uncond, src_cond, tgt_cond] ([src, tgt])."""

    def __init__(
        self,
        num_steps: int,
        mapper: torch.Tensor,
        equalizer: torch.Tensor,
        cross_replace_steps: float,
        self_replace_steps: float,
        record: bool = False,
    ) -> None:
        super().__init__(num_steps)
        self.mapper = mapper
        self.alphas = (mapper.sum(dim=0) > 0).float()  # 1 = the target token takes the mapped source maps
        self.equalizer = equalizer
        self.cross_until = steps_until(cross_replace_steps, num_steps)
        self.self_until = steps_until(self_replace_steps, num_steps)
        self.maps: dict[int, torch.Tensor] = {}  # token count -> [src, tgt] cross maps, summed over heads/layers/steps
        self.recorded: list[tuple[int, str, torch.Tensor]] | None = [] if record else None

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        if not site.is_cross and (self.step >= self.self_until or q.shape[2] > SELF_REPLACE_MAX_TOKENS):
            return attend(q, k, v, site.scale)
        out = attend(q, k, v, site.scale)  # every row as the plain UNet computes it; only tgt_cond changes
        if not site.is_cross:
            out[-1] = attention_probs(q[-2], k[-2], site.scale) @ v[-1]
            return out
        source, target = attention_probs(q[-2:], k[-2:], site.scale)
        if self.step < self.cross_until:
            mapped = source @ self.mapper.to(source)
            alphas, equalizer = self.alphas.to(source), self.equalizer.to(source)
            target = (mapped * alphas + target * (1 - alphas)) * equalizer
            out[-1] = target @ v[-1]
        pair = torch.stack([source, target]).float()
        self.maps[q.shape[2]] = self.maps.get(q.shape[2], 0) + pair.mean(dim=1)
        if self.recorded is not None:
            self.recorded.append((self.step, site.name, pair))
        return out

    def word_maps(self, places: tuple[list[int], list[int]], size: tuple[int, int]) -> torch.Tensor:
        """(2, 1, h, w): summed cross maps of the given token positions of [src, tgt], at about size / 4."""
        wanted = size[0] * size[1] / 16  # P2P reads 16x16 maps for 64x64 latents
        tokens = min(self.maps, key=lambda n: abs(math.log(n / wanted)))
        height = round(math.sqrt(tokens * size[0] / size[1]))
        maps = self.maps[tokens]
        words = [maps[branch][:, places[branch]].sum(dim=-1) for branch in range(2)]
        return torch.stack(words).reshape(2, 1, height, tokens // height)


class LocalBlend:
    """Step hook: outside the region the blend words attend to, the target latent becomes the source's."""

    def __init__(
        self, controller: PromptToPromptController, places: tuple[list[int], list[int]], steps: int, threshold: float
    ) -> None:
        self.controller, self.places, self.threshold = controller, places, threshold
        self.start = steps_until(BLEND_START, steps)
        self.mask: torch.Tensor | None = None  # (1, 1, h, w) of the last blended step

    def __call__(self, step: int, latents: torch.Tensor) -> torch.Tensor:
        if step < self.start:
            return latents
        maps = self.controller.word_maps(self.places, latents.shape[-2:])
        maps = F.interpolate(F.max_pool2d(maps, 3, 1, padding=1), size=latents.shape[-2:])
        maps = maps / maps.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        self.mask = (maps > self.threshold).any(dim=0, keepdim=True).to(latents)  # union over the branches
        source = latents[:1]
        return torch.cat([source, source + self.mask * (latents[1:] - source)])


def plan(
    tokenizer: Any, inputs: EditInputs, params: dict[str, Any], record: bool = False
) -> tuple[PromptToPromptController, LocalBlend | None]:
    """The controller (and local blend) for editing ``inputs.source_prompt`` into ``inputs.prompt``."""
    length = tokenizer.model_max_length
    source, target = prompt_words(tokenizer, inputs.source_prompt), prompt_words(tokenizer, inputs.prompt)
    mapper = token_mapper(source, target, params["edit_mode"], length)
    equalizer = torch.ones(length)
    if params["edit_mode"] == "reweight":
        chosen = positions(target[0], word_set(params["reweight_words"]))
        if not chosen:
            raise InputError("Re-weighting needs words of the target prompt: list them in “reweight words”.")
        equalizer[chosen] = params["reweight_factor"]
    controller = PromptToPromptController(
        inputs.steps, mapper, equalizer, params["cross_replace_steps"], params["self_replace_steps"], record
    )
    if not params["blend_words"].strip():
        return controller, None
    places = (
        positions(source[0], word_set(params["blend_words"])),
        positions(target[0], word_set(params["blend_words"])),
    )
    if not any(places):
        raise InputError("None of the blend words occurs in the source or target prompt; use words from them.")
    return controller, LocalBlend(controller, places, inputs.steps, params["blend_threshold"])


def attention_strip(controller: PromptToPromptController, words: Words, size: tuple[int, int]) -> Image.Image:
    """The target branch's cross-attention map of each target word (up to 8), normalised, side by side."""
    words = [(w, p) for w, p in words if p][:8]
    tile = 96
    strip = Image.new("RGB", (tile * max(1, len(words)), tile + 14), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    for i, (word, places) in enumerate(words):
        heat = controller.word_maps(([], places), size)[1, 0]
        heat = (heat / heat.max().clamp_min(1e-12) * 255).byte().cpu().numpy()
        strip.paste(
            Image.fromarray(np.asarray(heat), "L").resize((tile, tile), Image.Resampling.BILINEAR), (i * tile, 14)
        )
        draw.text((i * tile + 2, 1), word[:14], fill=(255, 255, 255))
    return strip


MODE_HELP = "replace: swap words 1:1; refine: add/change words; reweight: refine + scale chosen words' maps."
P2P_PARAMS: tuple[Param, ...] = (
    ChoiceParam("edit_mode", "refine", EDIT_MODES, help=MODE_HELP),
    FloatParam("cross_replace_steps", 0.8, 0.0, 1.0, help="Share of steps using the source's word maps (paper 0.8)."),
    FloatParam("self_replace_steps", 0.5, 0.0, 1.0, help="Share of steps using the source's self-attention (0.2-0.6)."),
    Param("reweight_words", "text", "", help="Target-prompt words to re-weight (reweight mode), e.g. “snow”."),
    FloatParam("reweight_factor", 2.0, -5.0, 10.0, step=0.5, help="Factor on the re-weighted words' attention."),
    Param("blend_words", "text", "", help="Local blend: words whose attention region may change; empty = off."),
    FloatParam("blend_threshold", 0.3, 0.05, 0.99, step=0.01, help="Local blend: share of the peak (paper 0.3)."),
)


@register
class PromptToPrompt(Method):
    name = "prompt_to_prompt"
    label = "Prompt-to-Prompt"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "Prompt-to-Prompt Image Editing with Cross Attention Control", 2023, "https://arxiv.org/abs/2208.01626"
    )
    summary = "Denoise source and edited prompt together; the edit reuses the source's attention maps."
    params = (
        *P2P_PARAMS,
        ChoiceParam("inversion", "ddim", INVERSION_KINDS, help=INVERSION_HELP),
    )
    requires = (IMAGE, SOURCE_PROMPT, PROMPT)

    def inversion_setting(self, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return params["inversion"], {}

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        kind, options = cls().inversion_setting(params)  # null-text P2P: its kind and inner steps
        return branch_edit_cost(kind, steps, **options)  # inversion, then [src, tgt] x CFG a step

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        controller, blend = plan(ctx.backbone.tokenizer, inputs, params)
        kind, options = self.inversion_setting(params)
        words, _ = prompt_words(ctx.backbone.tokenizer, inputs.prompt)

        def extras(edit: BranchEdit, output: Image.Image) -> list[tuple[Image.Image, str]]:
            strip = attention_strip(controller, words, tuple(edit.target.shape[-2:]))
            cells = [(strip, "cross-attention maps of the target words")]
            if blend is not None and blend.mask is not None:
                mask = Image.fromarray((blend.mask[0, 0].cpu().numpy() * 255).astype(np.uint8), "L")
                cells.append((mask_overlay(output, mask.resize(output.size)), "local-blend region"))
            return cells

        info = {"attention replaced (cross/self steps)": f"{controller.cross_until}/{controller.self_until}"}
        return run_controller(
            ctx, inputs, controller, kind, inversion_options=options, step_hook=blend, info=info, extras=extras
        )
