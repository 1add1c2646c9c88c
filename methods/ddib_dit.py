"""DDIB: Dual Diffusion Implicit Bridges for Image-to-Image Translation (Su et al., ICLR 2023).

https://arxiv.org/abs/2203.08382 — Translation between two domains with two independently trained
diffusion models and no paired training: encode the source image to the shared Gaussian latent x_T by
running the deterministic DDIM ODE forwards (x_0 -> x_T) under the *source* model, then decode x_T by
running the DDIM ODE backwards (x_T -> x_0) under the *target* model. Both halves are ODE solves, so
translating A -> B -> A returns the input up to discretisation error (cycle consistency), and with
source = target the round trip is a reconstruction. As in the paper's ImageNet experiments, the two
"domains" are two classes of one class-conditional model: here the class-conditional DiT-XL/2
(facebook/DiT-XL-2-256) in latent space. The paper steers only the decoding half (classifier guidance
on ADM, scale 1); DiT has no classifier, so the decoding half may use classifier-free guidance with
DiT's null class 1000 instead (``guidance``; 1.0 = none, the exact bridge).

DiT was trained on latents of ``stabilityai/sd-vae-ft-ema``, a fine-tune of SD's own VAE decoder in the
same latent space (same encoder, scaling factor 0.18215), so the backbone's shared SD VAE encodes and
decodes here and no second VAE is loaded. DiT works on square 256x256 images: the photo is centre-
cropped and resized to ``sample_size x VAE factor`` pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler
from PIL import Image

from methods.core.imagenet import class_index, class_names
from methods.core.images import square_image
from methods.core.latents import decode_latents, encode_image
from methods.core.registry import register
from methods.core.slots import IMAGE, SOURCE_CLASS, TARGET_CLASS
from methods.core.spec import (
    Condition,
    EditInputs,
    FloatParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)

NULL_CLASS = 1000  # DiT's class-dropout label, the unconditional branch of classifier-free guidance


@register
class DDIBDiT(Method):
    name = "ddib_dit"
    label = "DDIB (DiT)"
    condition = Condition.CLASS
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "Dual Diffusion Implicit Bridges for Image-to-Image Translation",
        2023,
        "https://arxiv.org/abs/2203.08382",
    )
    summary = "DDIM-invert the photo to noise under the source class, regenerate it under the target class."
    params = (
        FloatParam(
            "guidance",
            1.5,
            1.0,
            8.0,
            step=0.25,
            help="Classifier-free guidance towards the target class while decoding (DiT's null class). "
            "1 = none: the exact, cycle-consistent bridge; 1.5 is DiT's best-FID scale; 4 is DiTPipeline's default.",
        ),
    )
    addons = ("dit",)
    requires = (IMAGE, SOURCE_CLASS, TARGET_CLASS)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return steps + steps * (2.0 if params["guidance"] > 1 else 1.0)  # DiT: invert, then [cond, uncond]

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        source, target = class_index(inputs.source_class), class_index(inputs.target_class)
        transformer, scheduler = ctx.backbone.addon("dit")
        size = transformer.config.sample_size * ctx.backbone.vae_scale_factor
        total = 2 * inputs.steps
        # 1. encode the square crop with the shared VAE (DiT's latent space; mean x scaling factor, float32)
        latents = encode_image(ctx.backbone, square_image(inputs.image, size))
        # 2. x_0 -> x_T under the source class (no guidance, as in the paper)
        noise = ddim_invert(
            transformer, scheduler.config, latents, source, inputs.steps, lambda i: ctx.report(i, total)
        )
        # 3. x_T -> x_0 under the target class
        translated = ddim_sample(
            transformer, scheduler.config, noise, target, inputs.steps, params["guidance"],
            lambda i: ctx.report(inputs.steps + i, total),
        )  # fmt: skip
        # 4. decode
        image = decode_latents(ctx.backbone, translated)
        names = class_names()
        info = {"source": f"{source} {names[source]}", "target": f"{target} {names[target]}"}
        image = at_input_size(image, inputs.image, info)
        return MethodOutput(image, info=info)


def at_input_size(image: Image.Image, photo: Image.Image, info: dict[str, Any]) -> Image.Image:
    """DiT's square output shown at the size of the photo's centre square (noted in ``info`` when resized)."""
    side = min(photo.size)
    if image.width != side:
        info["resolution"] = f"DiT native {image.width}px, resized to {side}px"
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    return image


def predict_eps(
    transformer: Any, latents: torch.Tensor, t: torch.Tensor, label: int, guidance: float = 1.0
) -> torch.Tensor:
    """DiT's noise prediction, as DiTPipeline calls it: timesteps per sample, class labels, learned-sigma split."""
    channels = transformer.config.in_channels
    labels = [label, NULL_CLASS] if guidance > 1 else [label]  # [cond, uncond]
    model_input = latents.repeat(len(labels), 1, 1, 1).to(transformer.dtype)
    timesteps = t.reshape(1).to(latents.device).expand(len(labels))
    class_labels = torch.tensor(labels, device=latents.device)
    output = transformer(model_input, timestep=timesteps, class_labels=class_labels).sample
    eps = output[:, :channels] if transformer.config.out_channels // 2 == channels else output
    if guidance > 1:
        cond, uncond = eps.chunk(2)
        return (uncond + guidance * (cond - uncond)).to(latents.dtype)
    return eps.to(latents.dtype)


@torch.no_grad()
def ddim_invert(
    transformer: Any,
    scheduler_config: Any,
    latents: torch.Tensor,
    label: int,
    steps: int,
    report: Callable[[int], None] = lambda step: None,
    *,
    levels: int | None = None,
) -> torch.Tensor:
    """Deterministic DDIM ODE from x_0 to x_T (diffusers' DDIMInverseScheduler, eta = 0), or only its first
    ``levels`` steps of the ``steps``-step schedule (a partial inversion)."""
    scheduler = DDIMInverseScheduler.from_config(scheduler_config, clip_sample=False)  # DiT never clips latents
    scheduler.set_timesteps(steps, device=latents.device)
    for i, t in enumerate(scheduler.timesteps[:levels]):
        latents = scheduler.step(predict_eps(transformer, latents, t, label), t, latents).prev_sample
        report(i + 1)
    return latents


@torch.no_grad()
def ddim_sample(
    transformer: Any,
    scheduler_config: Any,
    latents: torch.Tensor,
    label: int,
    steps: int,
    guidance: float = 1.0,
    report: Callable[[int], None] = lambda step: None,
) -> torch.Tensor:
    """Deterministic DDIM ODE from x_T to x_0 (eta = 0), optionally with classifier-free guidance."""
    scheduler = DDIMScheduler.from_config(scheduler_config, clip_sample=False)
    scheduler.set_timesteps(steps, device=latents.device)
    for i, t in enumerate(scheduler.timesteps):
        eps = predict_eps(transformer, latents, t, label, guidance)
        latents = scheduler.step(eps, t, latents, eta=0.0).prev_sample
        report(i + 1)
    return latents
