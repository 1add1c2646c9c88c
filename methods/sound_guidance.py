"""Sound-guided editing: gradient guidance of the denoising toward the clip's embedding in a joint audio-image space.

Lee et al., "Sound-Guided Semantic Image Manipulation" (CVPR 2022, https://arxiv.org/abs/2112.00007) train an
audio encoder into CLIP's embedding space and edit a photo by optimising its StyleGAN latent so that the image's
CLIP embedding moves toward the sound's (cosine loss, plus a latent-distance term that keeps the photo). Here the
joint space is ImageBind's (Girdhar et al., CVPR 2023, https://arxiv.org/abs/2305.05665: an audio tower trained
against the frozen OpenCLIP ViT-H image encoder, the encoder the hub already has for IP-Adapter) and the generator
is Stable Diffusion. The photo is DDIM-inverted to ``strength`` x T (the inversion keeps it, in place of the
latent-distance term), then denoised with guidance in the manner of classifier guidance on the predicted clean
image (Dhariwal & Nichol 2021; "Universal Guidance", Bansal et al. 2023, arXiv 2302.07121): at each step, with
x̂0 = (z_t - sqrt(1 - a_t) eps) / sqrt(a_t), the gradient g of cos(E_img(D(x̂0)), e_audio) through the VAE decoder D
and the image encoder E_img shifts the noise prediction, eps' = eps - s * sqrt(1 - a_t) * g.

What is changed: eps is held constant inside the gradient (no backpropagation through the UNet; dx̂0/dz_t is taken
as 1/sqrt(a_t)), and g is rescaled to eps's RMS, so ``scale`` means the same on any backbone (0 = the plain DDIM
sampler, bit for bit). Licence: ImageBind's weights are CC BY-NC-SA 4.0 (non-commercial).
"""

from __future__ import annotations

from typing import Any

import torch

from methods.core.costs import PIXEL_GRADIENT, fraction_steps
from methods.core.ddim import ddim_invert, sampling_schedule
from methods.core.guidance import decode_pixels, has_half, objective_gradient
from methods.core.imagebind import cosine, embed_pixels, sound_embedding
from methods.core.latents import encode_image, encode_prompt, predict_noise
from methods.core.registry import register
from methods.core.slots import AUDIO, IMAGE, NEGATIVE_PROMPT, PROMPT
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


@register
class SoundGuidance(Method):
    name = "sound_guidance"
    label = "Sound-guided guidance (ImageBind)"
    condition = Condition.AUDIO
    strategy = Strategy.TRAINING_FREE
    paper = Paper("Sound-Guided Semantic Image Manipulation", 2022, "https://arxiv.org/abs/2112.00007")
    summary = (
        "Invert the photo, then steer every denoising step up the gradient of the ImageBind audio-image cosine "
        "(VAE decoder + ViT-H image encoder). ImageBind weights: CC BY-NC-SA 4.0, non-commercial."
    )
    params = (
        FloatParam(
            "scale",
            0.5,
            0.0,
            3.0,
            step=0.05,
            help="Guidance strength, in units of the noise prediction's size (0 = plain DDIM, no sound).",
        ),
        FloatParam("strength", 0.6, 0.05, 1.0, help="How far the photo is inverted before the guided denoising."),
        FloatParam(
            "guided_fraction", 1.0, 0.0, 1.0, help="Share of the denoising steps that are guided (the first ones)."
        ),
    )
    addons = ("imagebind_audio", "ip_adapter_image_encoder")
    requires = (IMAGE, AUDIO)
    optional = (PROMPT, NEGATIVE_PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        start = fraction_steps(steps, params["strength"])
        guided = round(params["guided_fraction"] * start) if params["scale"] > 0 else 0
        return start + 2.0 * start + PIXEL_GRADIENT * guided  # invert, CFG back, x̂0 gradients

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone = ctx.backbone
        sound = sound_embedding(backbone, inputs.audio)
        encoder = backbone.addon("ip_adapter_image_encoder")
        start = max(1, round(params["strength"] * inputs.steps))
        total = start * 2
        # 1. the photo's latent, DDIM-inverted under the prompt to level `start`
        cond, uncond = encode_prompt(backbone, inputs.prompt, inputs.negative_prompt)
        latents = encode_image(backbone, inputs.image)
        x_t = ddim_invert(
            backbone, latents, cond, inputs.steps, stop_at=start, on_step=lambda i, n: ctx.report(i, total)
        )[-1]
        # 2. guided DDIM back to 0
        guide = SoundGuide(backbone, encoder, sound, params["scale"], guided=round(params["guided_fraction"] * start))
        result = guided_sample(
            backbone, x_t, cond, uncond, inputs.steps, start, inputs.guidance, guide,
            on_step=lambda j: ctx.report(start + j, total),
        )  # fmt: skip
        with torch.no_grad():  # the result decoded once: its picture and its cosine
            pixels = decode_pixels(backbone.vae, result)
            before = float(cosine(sound, embed_pixels(encoder, decode_pixels(backbone.vae, latents))))
            after = float(cosine(sound, embed_pixels(encoder, pixels)))
        image = backbone.base.image_processor.postprocess(pixels, output_type="pil")[0]
        steps = ", ".join(f"{c:.3f}" for c in guide.similarities)
        info = {"ImageBind cosine": f"photo {before:.3f} -> result {after:.3f}", "cosine of x̂0 per guided step": steps}
        return MethodOutput(image, info=info)


class SoundGuide:
    """The noise-prediction shift of one step: eps - s * sqrt(1 - a) * g, g = d cos / d z_t rescaled to eps's RMS."""

    def __init__(self, backbone: Any, encoder: Any, sound: torch.Tensor, scale: float, guided: int) -> None:
        self.backbone, self.encoder, self.sound = backbone, encoder, sound
        self.scale, self.guided = scale, guided
        self.similarities: list[float] = []  # cos(E(D(x̂0)), sound) before each guided step

    def active(self, step: int) -> bool:
        return self.scale > 0 and step < self.guided

    def similarity_gradient(self, x0: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(cos(E(D(x0)), sound), its gradient with respect to x0) (``methods.core.guidance``: safe in float16)."""
        vae = self.backbone.vae

        def similarity(x: torch.Tensor) -> torch.Tensor:
            return cosine(self.sound, embed_pixels(self.encoder, decode_pixels(vae, x)))

        return objective_gradient(similarity, x0, has_half(vae, self.encoder), "sound")

    def __call__(self, eps: torch.Tensor, latents: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        x0 = (latents - (1 - alpha).sqrt() * eps) / alpha.sqrt()
        similarity, gradient = self.similarity_gradient(x0)
        self.similarities.append(similarity)
        gradient = gradient / alpha.sqrt()  # d x̂0 / d z_t with eps held constant
        rms = gradient.pow(2).mean().sqrt().clamp_min(1e-12)
        gradient = gradient * (eps.pow(2).mean().sqrt() / rms)
        return eps - self.scale * (1 - alpha).sqrt() * gradient


@torch.no_grad()
def guided_sample(
    backbone: Any,
    x_t: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    num_steps: int,
    start: int,
    guidance: float,
    guide: SoundGuide,
    on_step: Any = lambda step: None,
) -> torch.Tensor:
    """DDIM from level ``start`` to 0 (as ``methods.core.ddim.ddim_sample``), the guide shifting eps where active."""
    scheduler, schedule = sampling_schedule(backbone, num_steps, start)
    latents = x_t.float()
    for j, (_, t) in enumerate(schedule):
        eps = predict_noise(backbone, latents, t, cond, guidance, uncond)
        if guide.active(j):
            eps = guide(eps, latents, scheduler.alphas_cumprod[int(t)].to(latents.device))
        latents = scheduler.step(eps, t, latents).prev_sample
        on_step(j + 1)
    return latents
