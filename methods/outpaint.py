"""Outpainting: extend the canvas on chosen sides and fill the new area, two ways.

Both methods pad the source to the larger canvas (sides rounded to the model's stride), mark the new area
as the region to generate (their own mask: they need none drawn), fill it, and paste the original pixels
back exactly where the canvas did not change.

* **SD inpainting UNet** (Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models",
  CVPR 2022, https://arxiv.org/abs/2112.10752): the UNet fine-tuned with the masked image's latent and
  the mask as five extra input channels generates the new area from the prompt and the visible context
  (diffusers ``StableDiffusionInpaintPipeline`` with the ``inpaint_unet`` add-on). Training-based.
* **Blended Latent Diffusion** (Avrahami et al., SIGGRAPH 2023, https://arxiv.org/abs/2206.02779): the
  base model generates the new area while, after every step, the latent over the original area is
  replaced by the source's latent noised to the current level (the same pipeline with the base UNet, see
  ``methods/blended_latent.py``). Training-free.

``fill`` says what the new area holds before generation; it only reaches the result when strength < 1
(at strength 1 the new area starts from pure noise, and the inpainting UNet never sees it: its masked-image
input zeroes the masked area).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from diffusers import StableDiffusionInpaintPipeline
from PIL import Image

from methods.core.costs import denoised
from methods.core.denoise import denoise
from methods.core.images import mask_overlay
from methods.core.limits import denoising_steps
from methods.core.masked_edit import BLD_PAPER, blended_inpaint
from methods.core.registry import register
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT
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

SIDES = ("left", "right", "top", "bottom")
FILLS = ("edge", "reflect", "mean", "noise")


def _side(name: str, default: float) -> Param:
    along = "width" if name in {"left", "right"} else "height"
    return FloatParam(
        name,
        default,
        0.0,
        1.0,
        label=f"extend {name}",
        help=f"New area on the {name}, as a fraction of the image {along} (rounded to the model's stride).",
    )


def padding(size: tuple[int, int], params: dict[str, Any], multiple: int) -> tuple[int, int, int, int]:
    """Pixels added on (left, right, top, bottom): fractions of the side, rounded to ``multiple`` (half up, so a
    quarter of a 128 px side is one stride of 64, as a quarter of 512 px is two)."""
    width, height = size
    sides = {"left": width, "right": width, "top": height, "bottom": height}
    return tuple(math.floor(params[s] * sides[s] / multiple + 0.5) * multiple for s in SIDES)  # type: ignore[return-value]


def extend_canvas(
    image: Image.Image, pads: tuple[int, int, int, int], fill: str, seed: int = 0
) -> tuple[Image.Image, Image.Image]:
    """The padded canvas and its mask (255 = new area). The original sits unchanged at (left, top)."""
    left, right, top, bottom = pads
    source = np.asarray(image.convert("RGB"))
    widths = ((top, bottom), (left, right), (0, 0))
    if fill in {"edge", "reflect"}:
        canvas = np.pad(source, widths, mode=fill)
    else:
        canvas = np.pad(source, widths, mode="constant").astype(np.float64)
        new = np.ones(canvas.shape[:2], dtype=bool)
        new[top : top + image.height, left : left + image.width] = False
        mean = source.reshape(-1, 3).mean(axis=0)
        if fill == "mean":
            canvas[new] = mean
        else:  # "noise": Gaussian noise with the image's colour statistics, seeded
            std = source.reshape(-1, 3).std(axis=0)
            canvas[new] = np.random.default_rng(seed).normal(mean, std, (int(new.sum()), 3))
        canvas = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    mask = np.full(canvas.shape[:2], 255, dtype=np.uint8)
    mask[top : top + image.height, left : left + image.width] = 0
    return Image.fromarray(canvas), Image.fromarray(mask, "L")


class _Outpainting(Method):
    """What both outpainting methods share: the canvas, the paste-back and the declared output size."""

    condition = Condition.MASK
    params = (
        _side("left", 0.25),
        _side("right", 0.25),
        _side("top", 0.0),
        _side("bottom", 0.0),
        ChoiceParam("fill", "edge", FILLS, help="What the new area starts as (only matters when strength < 1)."),
        FloatParam("strength", 1.0, 0.05, 1.0, help="1.0 generates the new area from pure noise."),
    )
    requires = (IMAGE, PROMPT)  # no drawn mask: the new area is the mask
    optional = (NEGATIVE_PROMPT,)

    @classmethod
    def output_size(cls, size: tuple[int, int], params: dict[str, Any], multiple: int) -> tuple[int, int]:
        left, right, top, bottom = padding(size, params, multiple)
        return size[0] + left + right, size[1] + top + bottom

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        area = (1 + params["left"] + params["right"]) * (1 + params["top"] + params["bottom"])
        return 2.0 * denoised(steps, params["strength"]) * area  # CFG steps on the extended canvas

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        pads = padding(inputs.image.size, params, ctx.backbone.size_multiple)
        if not any(pads):
            raise InputError(
                f"Choose how far to extend the canvas: at least one side must add {ctx.backbone.size_multiple} px "
                "or more (the sides are rounded to the model's stride)."
            )
        canvas, mask = extend_canvas(inputs.image, pads, params["fill"], ctx.seed)
        denoising_steps(inputs.steps, params["strength"])
        generated = self.generate(ctx, inputs, canvas, mask, params["strength"])
        result = generated.copy()
        result.paste(inputs.image, (pads[0], pads[2]))  # the original pixels, exactly
        info = {"canvas": f"{canvas.width}x{canvas.height}", "added (l, r, t, b)": pads}
        return MethodOutput(result, info=info, extras=[(mask_overlay(canvas, mask), "canvas and new area (red)")])

    def generate(
        self, ctx: RunContext, inputs: EditInputs, canvas: Image.Image, mask: Image.Image, strength: float
    ) -> Image.Image:
        raise NotImplementedError


@register
class OutpaintInpaintUNet(_Outpainting):
    name = "outpaint_inpaint_unet"
    label = "Outpainting (SD inpainting UNet)"
    strategy = Strategy.TRAINING_BASED
    paper = Paper(
        "High-Resolution Image Synthesis with Latent Diffusion Models (SD inpainting)",
        2022,
        "https://arxiv.org/abs/2112.10752",
    )
    summary = "Extend the canvas; the inpainting UNet fills the new area from the prompt and the visible context."
    addons = ("inpaint_unet",)

    def generate(
        self, ctx: RunContext, inputs: EditInputs, canvas: Image.Image, mask: Image.Image, strength: float
    ) -> Image.Image:
        pipe = ctx.backbone.pipeline(StableDiffusionInpaintPipeline, unet=ctx.backbone.addon("inpaint_unet"))
        return denoise(pipe, ctx, inputs, strength=strength, size=canvas.size, image=canvas, mask_image=mask)


@register
class OutpaintBlendedLatent(_Outpainting):
    name = "outpaint_blended"
    label = "Outpainting (Blended Latent Diffusion)"
    strategy = Strategy.TRAINING_FREE
    paper = BLD_PAPER
    summary = "Extend the canvas; the base model fills it while the original area's latent is blended in each step."

    def generate(
        self, ctx: RunContext, inputs: EditInputs, canvas: Image.Image, mask: Image.Image, strength: float
    ) -> Image.Image:
        return blended_inpaint(ctx, inputs, canvas, mask, strength)
