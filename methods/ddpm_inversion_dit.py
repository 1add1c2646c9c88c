"""An Edit Friendly DDPM Noise Space: Inversion and Manipulations (Huberman-Spiegelglas, Kadosh, Michaeli, CVPR 2024).

https://arxiv.org/abs/2304.06140 — Invert a photo into the noise space of the *stochastic* DDPM sampler rather
than into DDIM's single x_T. Draw x_1 ... x_T independently from q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),
each with its own fresh Gaussian noise (not one forward chain), then read off the noise maps
z_t = (x_{t-1} - mu_t(x_t)) / sigma_t that the DDPM sampler x_{t-1} = mu_t(x_t) + sigma_t z_t needs to pass through
exactly those latents. Sampling from x_T with those z_t under the same condition returns x_0 exactly, for any model;
the maps carry the photo's structure far more strongly than Gaussian noise (the paper's "edit friendly" property), so
resampling with the same z_t under another condition edits the photo while keeping its layout. The paper starts the
edit T_skip steps below the top (from x_{T - T_skip}) to keep more of the photo.

The official code (inbarhub/DDPM_inversion) runs on Stable Diffusion 1.4 with text prompts: 100 steps, eta = 1,
guidance 3.5 for the source prompt and 15 for the target, T_skip = 36; its sigma_t is DDIM's eta = 1 variance (the DDPM
posterior variance of the strided schedule), and it replaces each x_{t-1} by mu_t + sigma_t z_t so that rounding
never accumulates. Here the model is the class-conditional DiT-XL/2 (facebook/DiT-XL-2-256) and the conditions are
ImageNet classes. What changed: (1) labels instead of prompts, classifier-free guidance against DiT's null class 1000;
(2) sigma_t is DDIM eta = 1's posterior variance, as in the official code, not DiT's learned sigma (its variance
channels are dropped, as DiTPipeline does); every step is diffusers' DDIMScheduler.step(eta=1, variance_noise=z_t);
(3) DiT's scheduler config ends with a deterministic step (set_alpha_to_one: alpha_bar_prev = 1, sigma = 0), where no
noise map could absorb the residual, so the timesteps use SD's convention, under which the official code runs
(steps_offset=1, set_alpha_to_one=False: the last step goes t=1 -> x_0 with sigma > 0); (4) the step count comes
from the tab and T_skip is a fraction of it (0.36 = the paper's 36 of 100); (5) the source guidance defaults to 1, as
in DDIB's inversion (the same-class reconstruction is exact at any value; the paper's 3.5 is a text-prompt setting),
and the target guidance to 4, DiTPipeline's default (the paper's 15 is for SD's text guidance); (6) no
prompt-to-prompt attention control; (7) the last noise map is kept (the official code sets z_1 = 0, a deterministic
last step; keeping it makes the reconstruction exact).

The shared SD VAE encodes and decodes (DiT was trained on sd-vae-ft-ema latents, the same latent space), on the square
centre crop at DiT's resolution, as in methods/ddib_dit.py. Licence: facebook/DiT-XL-2-256's weights are CC BY-NC 4.0
(non-commercial use only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import DDIMScheduler

from methods.core.imagenet import class_index, class_names
from methods.core.images import square_image
from methods.core.latents import decode_latents, encode_image
from methods.core.registry import register
from methods.core.slots import IMAGE, SOURCE_CLASS, TARGET_CLASS
from methods.core.spec import (
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
from methods.ddib_dit import NULL_CLASS, at_input_size, predict_eps


@register
class DDPMInversionDiT(Method):
    name = "ddpm_inversion_dit"
    label = "Edit-friendly DDPM inversion (DiT)"
    condition = Condition.CLASS
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "An Edit Friendly DDPM Noise Space: Inversion and Manipulations", 2024, "https://arxiv.org/abs/2304.06140"
    )
    summary = (
        "Extract the DDPM noise maps that regenerate the photo under the source class exactly, then resample with "
        "the same maps under the target class. DiT weights: CC BY-NC 4.0 (non-commercial)."
    )
    params = (
        FloatParam(
            "skip",
            0.36,
            0.0,
            0.9,
            step=0.01,
            label="T_skip",
            help="Fraction of the steps skipped at the top: the edit starts from the photo's noisy latent that many "
            "steps below pure noise. Higher keeps more of the photo; 0.36 is the paper's 36 of 100 steps.",
        ),
        FloatParam(
            "guidance",
            4.0,
            1.0,
            15.0,
            step=0.5,
            help=f"Classifier-free guidance towards the target class while resampling, against DiT's null class "
            f"{NULL_CLASS}. 1 = none; 4 is DiTPipeline's default; the paper's 15 is for SD's text prompts.",
        ),
        FloatParam(
            "source_guidance",
            1.0,
            1.0,
            15.0,
            step=0.5,
            help="Classifier-free guidance under the source class while extracting the noise maps. The same-class "
            "reconstruction is exact at any value; the paper uses 3.5 with text prompts.",
        ),
    )
    addons = ("dit",)
    requires = (IMAGE, SOURCE_CLASS, TARGET_CLASS)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        skip = min(int(round(params["skip"] * steps)), max(0, steps - 1))  # T_skip, as skip_steps counts it
        extract = steps * (2.0 if params["source_guidance"] > 1 else 1.0)  # DiT noise maps, every step
        return extract + (steps - skip) * (2.0 if params["guidance"] > 1 else 1.0)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. check inputs
        source, target = class_index(inputs.source_class), class_index(inputs.target_class)
        transformer, scheduler = ctx.backbone.addon("dit")
        steps = inputs.steps
        skip = skip_steps(params["skip"], steps, scheduler.config.num_train_timesteps)
        total = 2 * steps - skip
        size = transformer.config.sample_size * ctx.backbone.vae_scale_factor
        # 2. encode the square crop with the shared VAE (DiT's latent space; mean x scaling factor, float32)
        latents = encode_image(ctx.backbone, square_image(inputs.image, size))
        # 3. x_1..x_T from q(x_t | x_0) and the noise maps z_t under the source class
        xts, zs = ddpm_invert(
            transformer, scheduler.config, latents, source, steps, ctx.generator, params["source_guidance"],
            lambda i: ctx.report(i, total),
        )  # fmt: skip
        # 4. from x_{T - T_skip}, the same noise maps under the target class
        edited = ddpm_sample(
            transformer, scheduler.config, xts[skip], zs[skip:], target, steps, params["guidance"],
            lambda i: ctx.report(steps + i, total),
        )  # fmt: skip
        # 5. decode, shown at the input's square size
        image = decode_latents(ctx.backbone, edited)
        names = class_names()
        info = {
            "source": f"{source} {names[source]}",
            "target": f"{target} {names[target]}",
            "T_skip": f"{skip} of {steps} steps",
        }
        image = at_input_size(image, inputs.image, info)
        return MethodOutput(image, info=info)


def skip_steps(fraction: float, steps: int, num_train_timesteps: int = 1000) -> int:
    """T_skip as a step count: ``round(fraction x steps)``, leaving at least one step to resample."""
    if not 1 <= steps < num_train_timesteps:
        raise InputError(f"Edit-friendly DDPM inversion needs 1 to {num_train_timesteps - 1} steps; got {steps}.")
    return min(int(round(fraction * steps)), steps - 1)


def edit_friendly_scheduler(scheduler_config: Any, steps: int, device: torch.device | str) -> DDIMScheduler:
    """DiT's DDIM schedule with SD's step convention (last step t=1 -> x_0 keeps sigma > 0; see the docstring)."""
    scheduler = DDIMScheduler.from_config(scheduler_config, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    scheduler.set_timesteps(steps, device=device)
    return scheduler


@torch.no_grad()
def ddpm_invert(
    transformer: Any,
    scheduler_config: Any,
    latents: torch.Tensor,
    label: int,
    steps: int,
    generator: torch.Generator,
    guidance: float = 1.0,
    report: Callable[[int], None] = lambda step: None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The paper's inversion: ``(xts, zs)``, where ``xts[i]`` enters sampling step i (``xts[0]`` = x_T, ``xts[-1]``
    = x_0) and ``zs[i]`` is that step's noise map, so that ``step(xts[i], zs[i]) == xts[i + 1]``."""
    scheduler = edit_friendly_scheduler(scheduler_config, steps, latents.device)
    timesteps = scheduler.timesteps
    # 1. x_t ~ q(x_t | x_0) for every timestep, each with its own fresh noise (not a forward chain)
    xts = []
    for t in timesteps:
        noise = torch.randn(latents.shape, generator=generator, device=generator.device, dtype=latents.dtype)
        xts.append(scheduler.add_noise(latents, noise.to(latents.device), t.reshape(1)))
    xts.append(latents)
    # 2. z_t = (x_{t-1} - mu_t(x_t)) / sigma_t, top to bottom
    stride = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    zs = []
    for i, t in enumerate(timesteps):
        eps = predict_eps(transformer, xts[i], t, label, guidance)
        mean = scheduler.step(eps, t, xts[i], eta=1.0, variance_noise=torch.zeros_like(eps)).prev_sample
        sigma = scheduler._get_variance(t, t - stride) ** 0.5  # the sigma_t that step(eta=1) multiplies z by
        z = (xts[i + 1] - mean) / sigma
        # as in the official code: make x_{t-1} the sampler's own mu + sigma z, so rounding never accumulates
        xts[i + 1] = scheduler.step(eps, t, xts[i], eta=1.0, variance_noise=z).prev_sample
        zs.append(z)
        report(i + 1)
    return xts, zs


@torch.no_grad()
def ddpm_sample(
    transformer: Any,
    scheduler_config: Any,
    latents: torch.Tensor,
    noise_maps: list[torch.Tensor],
    label: int,
    steps: int,
    guidance: float = 1.0,
    report: Callable[[int], None] = lambda step: None,
) -> torch.Tensor:
    """DDPM (eta = 1) sampling with given noise maps over the last ``len(noise_maps)`` of ``steps`` timesteps,
    starting from ``latents`` (x_{T - T_skip}), optionally with classifier-free guidance."""
    scheduler = edit_friendly_scheduler(scheduler_config, steps, latents.device)
    start = steps - len(noise_maps)
    for i, (t, z) in enumerate(zip(scheduler.timesteps[start:], noise_maps, strict=True)):
        eps = predict_eps(transformer, latents, t, label, guidance)
        latents = scheduler.step(eps, t, latents, eta=1.0, variance_noise=z).prev_sample
        report(i + 1)
    return latents
