"""RePaint: Inpainting using Denoising Diffusion Probabilistic Models (Lugmayr et al., CVPR 2022), on the
latents of Stable Diffusion.

https://arxiv.org/abs/2201.09865 — An unconditionally trained diffusion model inpaints by conditioning
only the sampling: at every reverse step the known region is the source noised to the next level
(forward process) and the unknown region is the model's denoised sample; the two are combined with the
mask. Because the combined sample is not harmonised (the known part ignores what the model generated),
RePaint *resamples*: after ``jump_length`` reverse steps it goes back up the chain by re-noising the
sample with the forward transition q(x_{t+j} | x_t), and denoises again, ``resamples`` times per jump,
giving the model several chances to make the two regions agree. Here the chain runs on the 8x smaller
latent grid of the shared text-conditioned UNet (with classifier-free guidance); the reverse step, the
forward "undo" step and the jump schedule are diffusers' ``RePaintScheduler`` (``step``, ``undo_step``,
``set_timesteps(steps, jump_length, jump_n_sample)``), driven by the loop of its ``RePaintPipeline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import RePaintScheduler, StableDiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from methods.core import masks
from methods.core.latents import decode_latents, encode_image
from methods.core.masked_edit import finish, mask_params
from methods.core.registry import register
from methods.core.slots import IMAGE, MASK, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import (
    Condition,
    EditInputs,
    FloatParam,
    IntParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)


@dataclass
class RePaintRun:
    latents: torch.Tensor  # the final latent
    source: torch.Tensor  # the source's latent (posterior mean), which the known region converges to
    known: torch.Tensor  # (1, 1, h, w), 1 = keep
    timesteps: list[int]  # the whole schedule, jumps included
    model_calls: int
    jump_length: int


@torch.no_grad()
def repaint_latents(
    ctx: RunContext,
    image: Image.Image,
    mask: Image.Image,
    prompt: str,
    negative_prompt: str,
    steps: int,
    guidance: float,
    jump_length: int,
    resamples: int,
    eta: float,
) -> RePaintRun:
    backbone = ctx.backbone
    pipe = backbone.pipeline(StableDiffusionPipeline)
    device, dtype = backbone.device, backbone.dtype
    scheduler = RePaintScheduler.from_config(backbone.scheduler.config, eta=eta)
    # A jump must fit in the chain: at most steps - 1 steps back up (with fewer steps there is no jump).
    jump_length = max(1, min(jump_length, steps - 1))
    scheduler.set_timesteps(steps, jump_length=jump_length, jump_n_sample=resamples)
    timesteps = [int(t) for t in scheduler.timesteps]

    # 1. text conditioning, layout [uncond, cond] for classifier-free guidance
    cfg = guidance > 1.0
    cond, uncond = pipe.encode_prompt(prompt, device, 1, cfg, negative_prompt or None)
    embeds = torch.cat([uncond, cond]) if cfg else cond
    # 2. the known region: the source latent and the latent-grid mask (1 = keep)
    source = encode_image(backbone, image, dtype)
    known = 1.0 - masks.latent_mask(mask, tuple(source.shape[-2:]), device, dtype)
    # 3. the RePaint loop (as in diffusers' RePaintPipeline): down = reverse step, up = re-noise
    latents = randn_tensor(source.shape, generator=ctx.generator, device=device, dtype=dtype)
    latents = latents * scheduler.init_noise_sigma
    t_last, calls = timesteps[0] + 1, 0
    for i, t in enumerate(timesteps):
        if t < t_last:
            model_input = torch.cat([latents] * 2) if cfg else latents
            noise = pipe.unet(model_input, t, encoder_hidden_states=embeds, return_dict=False)[0]
            if cfg:
                noise_uncond, noise_text = noise.chunk(2)
                noise = noise_uncond + guidance * (noise_text - noise_uncond)
            latents = scheduler.step(noise, t, latents, source, known, generator=ctx.generator).prev_sample
            calls += 1
        else:
            latents = scheduler.undo_step(latents, t_last, generator=ctx.generator)
        t_last = t
        ctx.report(i + 1, len(timesteps))
    return RePaintRun(latents, source, known, timesteps, calls, jump_length)


@register
class RePaint(Method):
    name = "repaint"
    label = "RePaint (latent)"
    condition = Condition.MASK
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "RePaint: Inpainting using Denoising Diffusion Probabilistic Models", 2022, "https://arxiv.org/abs/2201.09865"
    )
    summary = "Known region from the noised source, unknown from the model; jump back up the chain and resample."
    params = (
        IntParam(
            "jump_length",
            5,
            1,
            50,
            help="j: steps re-noised at each jump back up the chain (at most steps - 1; fewer steps cap it).",
        ),
        IntParam("resamples", 3, 1, 20, help="r: how many times each jump is made (1 = no resampling)."),
        FloatParam("eta", 0.0, 0.0, 1.0, help="Noise of each reverse step: 0 = DDIM, 1 = DDPM (the paper's)."),
        *mask_params(8.0),
    )
    requires = (IMAGE, MASK, PROMPT)
    optional = (NEGATIVE_PROMPT,)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        jump = max(1, min(params["jump_length"], steps - 1))  # as repaint_latents caps it
        jumps = len(range(0, steps - jump, jump))  # RePaintScheduler's jump points
        return 2.0 * (steps + jumps * (params["resamples"] - 1) * jump)  # CFG reverse steps, resamples included

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        mask = masks.dilate(masks.check_mask(inputs.mask, inputs.image.size), params["dilate"])
        run = repaint_latents(
            ctx,
            inputs.image,
            mask,
            inputs.prompt,
            inputs.negative_prompt,
            inputs.steps,
            inputs.guidance,
            params["jump_length"],
            params["resamples"],
            params["eta"],
        )
        result = decode_latents(ctx.backbone, run.latents)
        info = {"model calls": run.model_calls, "jump length used": run.jump_length}
        return MethodOutput(finish(inputs, result, mask, params), info=info)
