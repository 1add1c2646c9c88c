"""Reference-only control (lllyasviel, 2023; the ControlNet "reference_only" preprocessor).

https://github.com/Mikubill/sd-webui-controlnet/discussions/1236 — No trained weights: the reference image
steers Stable Diffusion through its own self-attention. At every denoising step the reference's latent is
noised to the current timestep and run through the UNet in a parallel pass; each self-attention layer
stores its input (the reference's normalised hidden states). In the target's pass, those layers attend
to their own tokens *and* the stored reference tokens (keys and values of ``concat[x, x_ref]``), so
textures, colours and identity flow from the reference without any training. The "attention weight"
picks which layers read the reference (the widest layers first, as the webui's control weight does;
0 = none), and ``style_fidelity`` blends, for the unconditional half of classifier-free guidance,
attending with and without the reference (1 = the unconditional branch never sees it, so guidance pushes
towards the reference). Generator (text-to-image) without a source photo; editor (image-to-image at a
strength) with one. The webui's optional "reference_adain" (group-norm statistics) is not included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from PIL import Image, ImageOps

from methods.core.denoise import denoise
from methods.core.latents import encode_image
from methods.core.registry import register
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT, REFERENCE
from methods.core.spec import Condition, EditInputs, FloatParam, Method, MethodOutput, Paper, RunContext, Strategy

WRITE, READ = "write", "read"


@dataclass
class ReferenceState:
    """Shared by the UNet pre-hook and every layer's processor during one run."""

    latents: torch.Tensor  # the reference's clean latent (1, 4, h, w)
    scheduler: Any  # noises the reference to the current timestep
    generator: torch.Generator  # the reference's own noise, so the target's noise equals the plain pipeline's
    style_fidelity: float
    guided: bool  # classifier-free guidance on: batch = [uncond..., cond...]
    mode: str = READ
    uncond_rows: int = 0


class ReferenceAttention:
    """Self-attention processor: WRITE stores the input tokens; READ attends to ``concat[x, stored]``."""

    def __init__(self, original: Any, state: ReferenceState, reads: bool) -> None:
        self.original, self.state, self.reads = original, state, reads
        self.stored: torch.Tensor | None = None

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        state = self.state
        if state.mode == WRITE:
            self.stored = hidden_states
        if state.mode == WRITE or not self.reads or self.stored is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        context = torch.cat([hidden_states, self.stored], dim=1)  # keys/values: own tokens + reference tokens
        shared = self.original(attn, hidden_states, context, attention_mask, temb, **kwargs)
        if state.style_fidelity == 0 or state.uncond_rows == 0:
            return shared
        # [uncond | cond]: the unconditional rows attend without the reference, blended by style fidelity
        alone = shared.clone()
        rows = slice(0, state.uncond_rows)
        alone[rows] = self.original(attn, hidden_states[rows], None, attention_mask, temb, **kwargs)
        return state.style_fidelity * alone + (1.0 - state.style_fidelity) * shared


def self_attention_layers(unet: Any) -> list[str]:
    """Processor names of the self-attention layers, widest first, ties in forward order (down, mid, up),
    as the webui sorts its transformer blocks."""
    place = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    layers = [
        (name, module.to_q.in_features)
        for name, module in unet.named_modules()
        if name.endswith("attn1") and hasattr(module, "processor")
    ]
    layers.sort(key=lambda item: (-item[1], place.get(item[0].split(".")[0], 3)))  # stable within a place
    return [f"{name}.processor" for name, _ in layers]


@contextmanager
def reference_attention(unet: Any, state: ReferenceState, weight: float) -> Iterator[dict[str, ReferenceAttention]]:
    """Install the processors and the reference pass on the shared UNet for the block. The hook is ours and
    removed here, also on error; the processors are shared state, put back by the runner's ``borrowed()``."""
    processors = dict(unet.attn_processors)
    order = self_attention_layers(unet)
    installed = {
        name: ReferenceAttention(processors[name], state, reads=weight > index / len(order))
        for index, name in enumerate(order)
    }

    def reference_pass(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        if state.mode == WRITE:  # the reference pass itself
            return
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        t = torch.as_tensor(timestep, device=state.latents.device).reshape(1)
        noise = torch.randn(state.latents.shape, generator=state.generator, device=state.latents.device)
        noisy = state.scheduler.add_noise(state.latents, noise.to(state.latents.dtype), t)
        noisy = state.scheduler.scale_model_input(noisy, timestep).expand(sample.shape[0], -1, -1, -1)
        rest = {k: v for k, v in kwargs.items() if k not in {"sample", "timestep"}}
        state.uncond_rows = sample.shape[0] // 2 if state.guided else 0
        state.mode = WRITE
        try:
            module(noisy, timestep, *args[2:], **rest)
        finally:
            state.mode = READ

    handle = unet.register_forward_pre_hook(reference_pass, with_kwargs=True)
    try:
        unet.set_attn_processor({**processors, **installed})
        yield installed
    finally:
        handle.remove()


@register
class ReferenceOnly(Method):
    name = "reference_only"
    label = "Reference-only attention"
    condition = Condition.REFERENCE
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "ControlNet reference-only preprocessor (sd-webui-controlnet discussion #1236)",
        2023,
        "https://github.com/Mikubill/sd-webui-controlnet/discussions/1236",
    )
    summary = "Self-attention also attends to the reference's tokens from a parallel UNet pass; no training."
    params = (
        FloatParam(
            "attention_weight",
            1.0,
            0.0,
            1.0,
            help="Fraction of self-attention layers (widest first) that read the reference; 0 = plain SD.",
        ),
        FloatParam(
            "style_fidelity",
            0.5,
            0.0,
            1.0,
            help="1 = the unconditional guidance branch ignores the reference (stronger transfer); 0 = both see it.",
        ),
        FloatParam("strength", 0.75, 0.05, 1.0, help="With a source photo: how far it is noised (img2img)."),
    )
    requires = (REFERENCE,)
    optional = (IMAGE, PROMPT, NEGATIVE_PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 4.0 * steps  # the reference pass doubles every CFG call (a photo's strength shortens it)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone = ctx.backbone
        edit = inputs.image is not None
        pipe = backbone.pipeline(StableDiffusionImg2ImgPipeline if edit else StableDiffusionPipeline)
        width, height = inputs.image.size if edit else (backbone.size, backbone.size)
        state = ReferenceState(
            latents=encode_reference(backbone, inputs.reference, (width, height)),
            scheduler=backbone.scheduler_copy(),
            generator=torch.Generator(device=ctx.generator.device).manual_seed(ctx.seed + 1),
            style_fidelity=params["style_fidelity"],
            guided=inputs.guidance > 1.0,
        )
        with reference_attention(backbone.unet, state, params["attention_weight"]) as installed:
            if edit:
                image = denoise(pipe, ctx, inputs, strength=params["strength"], image=inputs.image)
            else:
                image = denoise(pipe, ctx, inputs, size=(width, height))
        reading = sum(p.reads for p in installed.values())
        info = {"layers reading the reference": f"{reading}/{len(installed)}"}
        if not edit:
            info["mode"] = "no source image: text-to-image (strength unused)"
        return MethodOutput(image, info)


def encode_reference(backbone: Any, reference: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """The reference, centre-cropped and resized to the target's size, as a VAE latent (distribution mode)."""
    fitted = ImageOps.fit(reference.convert("RGB"), size, Image.Resampling.LANCZOS)
    return encode_image(backbone, fitted, backbone.dtype)
