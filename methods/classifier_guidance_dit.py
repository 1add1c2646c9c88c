"""Universal Guidance for Diffusion Models (Bansal et al., 2023), with an off-the-shelf ImageNet classifier on DiT.

https://arxiv.org/abs/2302.07121 — Classifier guidance (Dhariwal & Nichol, 2021, https://arxiv.org/abs/2105.05233)
shifts each noise prediction by the gradient of log p(y | x_t), which needs a classifier trained on noisy images.
Universal guidance's *forward guidance* instead applies an ordinary classifier f to the predicted clean image
x̂0(z_t) = (z_t - sqrt(1 - ᾱ_t) ε(z_t)) / sqrt(ᾱ_t), decoded to pixels: ε̂ = ε - s sqrt(1 - ᾱ_t) ∇_{z_t} log
p_f(y | D(x̂0(z_t))), the gradient taken through the diffusion model, the VAE decoder and f (as the official code
does), and the DDIM step uses ε̂. *Self-recurrence* (the paper's k) re-noises z_{t-1} back to z_t with fresh
Gaussian noise and repeats the guided step k times. As an editor: DDIM-invert the photo's latent under the source
class part of the way (``strength`` of the steps, as SDEdit / DDIB), then denoise those steps under the target
class with forward guidance by microsoft/resnet-50 (add-on ``imagenet_classifier``; ImageNet-1k's label order is
DiT's). The classifier sees the decoded x̂0 resized and normalised as its image processor would, in torch so that
it is differentiable. What changed from the paper: DiT-XL/2 (latent, class-conditional, optional classifier-free
guidance) replaces their unconditional pixel model / Stable Diffusion; the start is a partial DDIM inversion of a
photo instead of noise; no backward guidance. The info shows what the classifier says: log p(target) of the photo
and of the result. DiT's weights (facebook/DiT-XL-2-256) are CC BY-NC 4.0: non-commercial use only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from diffusers import DDIMScheduler

from methods.core.costs import GRADIENT_STEP, PIXEL_GRADIENT, fraction_steps
from methods.core.guidance import decode_pixels, has_half, objective_gradient, processor_input
from methods.core.imagenet import class_index, class_names
from methods.core.images import square_image
from methods.core.latents import encode_image
from methods.core.registry import register
from methods.core.slots import IMAGE, SOURCE_CLASS, TARGET_CLASS
from methods.core.spec import (
    Condition,
    EditInputs,
    FloatParam,
    InputError,
    IntParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)
from methods.ddib_dit import at_input_size, ddim_invert, predict_eps

logger = logging.getLogger(__name__)


class ClassifierObjective:
    """log p(label | image) under an ImageNet classifier, differentiable in [-1, 1] pixels (its processor in torch)."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model, self.processor = model, processor
        size = processor.size
        self.crop = int(size.get("shortest_edge") or size["height"])
        crop_pct = getattr(processor, "crop_pct", None)  # ConvNeXt-style: resize to crop / crop_pct, centre crop
        self.resize = int(self.crop / crop_pct) if crop_pct and "shortest_edge" in size and self.crop < 384 else None

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """Square [-1, 1] pixels -> the classifier's input: bicubic resize, centre crop, mean / std."""
        processor = self.processor
        return processor_input(pixels, self.resize or self.crop, self.crop, processor.image_mean, processor.image_std)

    def log_probs(self, pixels: torch.Tensor) -> torch.Tensor:
        model = self.model
        logits = model(pixel_values=self.preprocess(pixels).to(model.device, model.dtype)).logits
        return logits.float().log_softmax(dim=-1)


def guided_eps(
    transformer: Any,
    vae: Any,
    objective: ClassifierObjective,
    latents: torch.Tensor,
    t: torch.Tensor,
    alpha: torch.Tensor,
    label: int,
    scale: float,
    guidance: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward guidance at z_t: (ε - s sqrt(1 - ᾱ_t) ∇ log p(label | D(x̂0)), log p(label | D(x̂0)) before the shift).

    The gradient goes through DiT, the VAE decoder and the classifier (``methods.core.guidance``: scaled in float16;
    a non-finite one leaves ε unguided for this step)."""
    kept: dict[str, torch.Tensor] = {}

    def log_p(z: torch.Tensor) -> torch.Tensor:
        kept["eps"] = eps = predict_eps(transformer, z, t, label, guidance)
        x0 = (z - (1 - alpha).sqrt() * eps) / alpha.sqrt()
        return objective.log_probs(decode_pixels(vae, x0))[:, label].sum()

    value, grad = objective_gradient(log_p, latents, has_half(transformer, vae), "classifier")
    return kept["eps"].detach() - scale * (1 - alpha).sqrt() * grad, torch.tensor([value])


def guided_sample(
    transformer: Any,
    scheduler_config: Any,
    vae: Any,
    objective: ClassifierObjective,
    latents: torch.Tensor,
    label: int,
    steps: int,
    levels: int,
    scale: float,
    guidance: float = 1.0,
    recurrence: int = 1,
    generator: torch.Generator | None = None,
    report: Callable[[int], None] = lambda step: None,
) -> torch.Tensor:
    """The last ``levels`` of ``steps`` DDIM steps (eta 0) under ``label``, each with forward guidance (none at
    ``scale`` 0: then ``ddib_dit.ddim_sample``'s steps exactly) and ``recurrence`` - 1 re-noised repeats."""
    scheduler = DDIMScheduler.from_config(scheduler_config, clip_sample=False)
    scheduler.set_timesteps(steps, device=latents.device)
    ratio = scheduler.config.num_train_timesteps // steps
    for i, t in enumerate(scheduler.timesteps[steps - levels :]):
        alpha = scheduler.alphas_cumprod[t].to(latents.device)
        prev = int(t) - ratio
        alpha_prev = scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod
        for k in range(recurrence):
            if scale == 0:
                with torch.no_grad():
                    eps = predict_eps(transformer, latents, t, label, guidance)
            else:
                eps, _ = guided_eps(transformer, vae, objective, latents, t, alpha, label, scale, guidance)
            stepped = scheduler.step(eps, t, latents, eta=0.0).prev_sample
            if k < recurrence - 1:  # self-recurrence: z_t ~ N(sqrt(ᾱ_t / ᾱ_{t-1}) z_{t-1}, 1 - ᾱ_t / ᾱ_{t-1})
                beta = (alpha / alpha_prev.to(alpha.device)).to(latents.dtype)
                noise = torch.randn(stepped.shape, generator=generator, device=generator.device if generator else None)
                latents = beta.sqrt() * stepped + (1 - beta).sqrt() * noise.to(stepped.device, stepped.dtype)
        latents = stepped
        report(i + 1)
    return latents


@register
class ClassifierGuidanceDiT(Method):
    name = "classifier_guidance_dit"
    label = "Universal guidance: ResNet-50 on DiT"
    condition = Condition.CLASS
    strategy = Strategy.TRAINING_FREE
    paper = Paper("Universal Guidance for Diffusion Models", 2023, "https://arxiv.org/abs/2302.07121")
    summary = (
        "Partially DDIM-invert the photo under the source class, then denoise under the target class while an "
        "ordinary ImageNet classifier (ResNet-50) on the predicted clean image pushes towards the target. DiT's "
        "weights are CC BY-NC 4.0 (non-commercial)."
    )
    params = (
        FloatParam(
            "scale",
            10.0,
            0.0,
            200.0,
            step=1.0,
            help="Forward-guidance scale s: ε - s·sqrt(1-ᾱ_t)·∇ log p(target | decoded x̂0). 0 = no classifier.",
        ),
        FloatParam(
            "strength",
            0.7,
            0.1,
            1.0,
            help="Fraction of the steps the photo is DDIM-inverted (and then denoised): 1 = all the way to noise.",
        ),
        FloatParam(
            "guidance",
            1.0,
            1.0,
            8.0,
            step=0.25,
            help="DiT's own classifier-free guidance towards the target class (null class 1000); 1 = none.",
        ),
        IntParam("recurrence", 1, 1, 10, help="Self-recurrence k: each step is taken, re-noised and retaken k times."),
    )
    addons = ("dit", "imagenet_classifier")
    requires = (IMAGE, SOURCE_CLASS, TARGET_CLASS)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        levels, dit = fraction_steps(steps, params["strength"]), 2.0 if params["guidance"] > 1 else 1.0
        guided = GRADIENT_STEP * dit + PIXEL_GRADIENT if params["scale"] > 0 else dit  # through DiT + decoder
        return levels + levels * params["recurrence"] * guided  # invert, then guided steps x recurrence

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. check inputs
        source, target = class_index(inputs.source_class), class_index(inputs.target_class)
        if inputs.steps < 1:
            raise InputError(f"Universal guidance needs at least one denoising step; got {inputs.steps}.")
        transformer, scheduler = ctx.backbone.addon("dit")
        objective = ClassifierObjective(*ctx.backbone.addon("imagenet_classifier"))
        vae, size = ctx.backbone.vae, transformer.config.sample_size * ctx.backbone.vae_scale_factor
        levels = max(1, round(params["strength"] * inputs.steps))
        total = 2 * levels
        # 2. encode the square crop with the shared VAE (DiT's latent space)
        photo = square_image(inputs.image, size)
        latents = encode_image(ctx.backbone, photo)
        # 3. x_0 -> x_t under the source class, ``levels`` of ``steps`` DDIM steps
        noisy = ddim_invert(transformer, scheduler.config, latents, source, inputs.steps, levels=levels)
        ctx.report(levels, total)
        # 4. x_t -> x_0 under the target class, with forward guidance by the classifier
        edited = guided_sample(
            transformer, scheduler.config, vae, objective, noisy, target, inputs.steps, levels, params["scale"],
            params["guidance"], int(params["recurrence"]), ctx.generator, lambda i: ctx.report(levels + i, total),
        )  # fmt: skip
        # 5. decode; what the classifier says about the photo and the result
        with torch.no_grad():
            before = objective.log_probs(ctx.backbone.base.image_processor.preprocess(photo).to(latents.device))[0]
            pixels = decode_pixels(vae, edited)
            after = objective.log_probs(pixels)[0]
        image = ctx.backbone.base.image_processor.postprocess(pixels, output_type="pil")[0]
        names = class_names()
        top = int(after.argmax())
        info = {
            "source": f"{source} {names[source]}",
            "target": f"{target} {names[target]}",
            "log p(target) photo → result": f"{float(before[target]):.2f} → {float(after[target]):.2f}",
            "classifier top-1": f"{top} {names[top]} ({float(after[top].exp()):.1%})",
        }
        image = at_input_size(image, inputs.image, info)
        return MethodOutput(image, info=info)
