"""GLIGEN: Open-Set Grounded Text-to-Image Generation (Li et al., CVPR 2023).

https://arxiv.org/abs/2301.07093 — GLIGEN freezes Stable Diffusion and inserts a trainable *gated
self-attention* layer into every transformer block, between self- and cross-attention. Each grounding
entity (a phrase and its box) becomes one token: the phrase's CLIP text embedding concatenated with a
Fourier embedding of the box corners, mapped by an MLP. The visual tokens attend jointly to themselves
and to these grounding tokens, and the result is added back through a learned tanh gate, so the frozen
model's knowledge is kept while objects land in their boxes. *Scheduled sampling* runs the grounding
layers only for the first beta x T steps (layout early, quality late). The inpainting checkpoint takes
the source latent and a box mask as extra input channels and re-imposes the noised source outside the
boxes at every step, so only the boxed regions are regenerated. Here: diffusers
``StableDiffusionGLIGENPipeline`` with the text-box GLIGEN UNets over the shared VAE and text encoder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from diffusers import StableDiffusionGLIGENPipeline
from diffusers.models.attention import GatedSelfAttentionDense
from PIL import Image

from methods.core.box_attention import check_layout_boxes
from methods.core.denoise import denoise
from methods.core.registry import register
from methods.core.slots import BOXES, IMAGE, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import (
    ChoiceParam,
    Condition,
    EditInputs,
    FloatParam,
    InputError,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)

logger = logging.getLogger(__name__)

AUTO, GENERATE, EDIT = "auto", "generate", "edit inside boxes"


@register
class GLIGEN(Method):
    name = "gligen"
    label = "GLIGEN"
    condition = Condition.LAYOUT
    strategy = Strategy.TRAINING_BASED
    paper = Paper("GLIGEN: Open-Set Grounded Text-to-Image Generation", 2023, "https://arxiv.org/abs/2301.07093")
    summary = "Gated self-attention layers ground each phrase in its box; edit mode regenerates only the boxes."
    params = (
        ChoiceParam(
            "mode",
            AUTO,
            (AUTO, GENERATE, EDIT),
            help="auto: edit inside the boxes when a photo is given, else generate. generate: a new image from "
            "prompt + boxes. edit inside boxes: inpaint the boxes of the source image.",
        ),
        FloatParam(
            "gligen_scheduled_sampling_beta",
            0.3,
            0.0,
            1.0,
            label="scheduled sampling beta",
            help="Fraction of the steps that use the grounding layers (the paper's tau; 0.3 in the paper).",
        ),
    )
    addons = ("gligen_unet", "gligen_inpaint_unet")
    requires = (BOXES,)
    optional = (IMAGE, PROMPT, NEGATIVE_PROMPT)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. check the inputs
        edit = params["mode"] == EDIT or (params["mode"] == AUTO and inputs.image is not None)
        if edit and inputs.image is None:
            raise InputError("GLIGEN's edit mode needs a source image: upload one, or switch the mode to generate.")
        boxes = check_layout_boxes(inputs.boxes)  # at most 16 (the checkpoints ground 30)
        phrases = [box.phrase.strip() for box in boxes]
        prompt = inputs.prompt.strip() or ", ".join(phrases)
        info: dict[str, Any] = {"mode": EDIT if edit else GENERATE}
        if not inputs.prompt.strip():
            info["prompt"] = f"none given, used the phrases: {prompt!r}"

        # 2. the pipeline over the shared VAE / text encoder with the GLIGEN UNet swapped in
        unet = ctx.backbone.addon("gligen_inpaint_unet" if edit else "gligen_unet")
        if unet.config.attention_type != "gated":
            raise RuntimeError(
                f"the GLIGEN add-on UNet has attention_type={unet.config.attention_type!r}; the text-box pipeline "
                "needs a text-box GLIGEN checkpoint (attention_type='gated')."
            )
        pipe = ctx.backbone.pipeline(StableDiffusionGLIGENPipeline, unet=unet)

        # 3. sizes: edit mode works at the VAE's square sample size (the pipeline would centre-crop to it);
        #    resizing instead keeps the relative boxes on the same content, and the result is resized back.
        source, size = inputs.image, _output_size(ctx, inputs)
        if edit:
            side = int(pipe.vae.config.sample_size)
            if source.size != (side, side):
                info["resolution"] = (
                    f"GLIGEN inpainting runs at {side}x{side}; resized from and back to {size[0]}x{size[1]}"
                )
                source = source.resize((side, side), Image.Resampling.LANCZOS)
            width = height = side
        else:
            width, height = size

        # 4. denoise; the fuser (gated attention) switches are put back afterwards
        with fusers_kept(unet):
            image = denoise(
                pipe,
                ctx,
                inputs,
                prompt=prompt,
                size=(width, height),
                gligen_phrases=phrases,
                gligen_boxes=[box.as_list() for box in boxes],
                gligen_inpaint_image=source if edit else None,
                gligen_scheduled_sampling_beta=params["gligen_scheduled_sampling_beta"],
            )
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        info["grounded steps"] = f"{int(params['gligen_scheduled_sampling_beta'] * inputs.steps)}/{inputs.steps}"
        return MethodOutput(image, info)


def _output_size(ctx: RunContext, inputs: EditInputs) -> tuple[int, int]:
    if inputs.image is not None:
        return inputs.image.size
    return ctx.backbone.size, ctx.backbone.size


@contextmanager
def fusers_kept(unet: Any) -> Iterator[None]:
    """The pipeline toggles ``GatedSelfAttentionDense.enabled`` (scheduled sampling): restore the flags."""
    flags = {module: module.enabled for module in unet.modules() if type(module) is GatedSelfAttentionDense}
    try:
        yield
    finally:
        for module, enabled in flags.items():
            module.enabled = enabled
