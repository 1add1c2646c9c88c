"""IP-Adapter: Text Compatible Image Prompt Adapter for Text-to-Image Diffusion Models (Ye et al., 2023).

https://arxiv.org/abs/2308.06721 — A frozen CLIP image encoder embeds the reference image; a small
trained projection turns the embedding into a few extra context tokens. Every cross-attention layer of
the frozen UNet gets a second, *decoupled* cross-attention with its own trained key/value projections
for these image tokens, and its output is added to the text cross-attention's output scaled by lambda
(the IP-Adapter scale): Z = Attn(Q, K_text, V_text) + lambda * Attn(Q, K_image, V_image). Only the
projection and the new key/value weights (22M parameters) are trained, so text prompts keep working and
the image acts as a prompt. Here the reference steers SDEdit-style image-to-image editing of the source
(diffusers ``StableDiffusionImg2ImgPipeline``, ``load_ip_adapter``); without a source image it falls back
to text-to-image generation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

from methods.core.denoise import denoise
from methods.core.registry import register
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT, REFERENCE
from methods.core.spec import Condition, EditInputs, FloatParam, Method, MethodOutput, Paper, RunContext, Strategy


@register
class IPAdapter(Method):
    name = "ip_adapter"
    label = "IP-Adapter"
    condition = Condition.REFERENCE
    strategy = Strategy.TRAINING_BASED
    paper = Paper(
        "IP-Adapter: Text Compatible Image Prompt Adapter for Text-to-Image Diffusion Models",
        2023,
        "https://arxiv.org/abs/2308.06721",
    )
    summary = "Decoupled cross-attention on CLIP image tokens: the reference image acts as a prompt."
    params = (
        FloatParam(
            "ip_adapter_scale",
            0.6,
            0.0,
            1.5,
            label="IP-Adapter scale",
            help="Weight lambda of the image cross-attention (0 = text only, 1 = the paper's default).",
        ),
        FloatParam("strength", 0.7, 0.05, 1.0, help="How far the source image is noised before denoising (img2img)."),
    )
    addons = ("ip_adapter", "ip_adapter_image_encoder")
    requires = (REFERENCE,)
    optional = (IMAGE, PROMPT, NEGATIVE_PROMPT)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        edit = inputs.image is not None
        pipe = ctx.backbone.pipeline(
            StableDiffusionImg2ImgPipeline if edit else StableDiffusionPipeline,
            image_encoder=ctx.backbone.addon("ip_adapter_image_encoder"),
        )
        with ip_adapter_loaded(pipe, ctx.backbone.addon("ip_adapter"), params["ip_adapter_scale"]):
            if edit:
                image = denoise(
                    pipe,
                    ctx,
                    inputs,
                    strength=params["strength"],
                    image=inputs.image,
                    ip_adapter_image=inputs.reference,
                )
            else:
                size = (ctx.backbone.size, ctx.backbone.size)
                image = denoise(pipe, ctx, inputs, size=size, ip_adapter_image=inputs.reference)
        info = {} if edit else {"mode": "no source image: text-to-image with the reference (strength unused)"}
        return MethodOutput(image, info)


@contextmanager
def ip_adapter_loaded(pipe: Any, weights: Any, scale: float) -> Iterator[None]:
    """Load the IP-Adapter into the pipeline's (shared) UNet for the block.

    It replaces the UNet's attention processors, ``encoder_hid_proj`` and ``config.encoder_hid_dim_type``:
    shared state, which the runner's ``borrowed()`` puts back (the original objects), also on error.
    """
    pipe.load_ip_adapter(
        weights.location, subfolder=weights.subfolder, weight_name=weights.weight_name, image_encoder_folder=None
    )
    pipe.set_ip_adapter_scale(scale)
    yield
