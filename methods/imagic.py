"""Imagic: Text-Based Real Image Editing with Diffusion Models (Kawar et al., CVPR 2023).

https://arxiv.org/abs/2210.09276 — Three stages on one photo x and a target text. (A) Text embedding
optimisation: starting from the target embedding e_tgt, optimise e_opt (the model frozen) with the denoising
loss ||eps - eps_theta(sqrt(a_t) x + sqrt(1 - a_t) eps, t, e)||^2 at random t, so that e_opt "describes" the
photo. (B) Model fine-tuning: with e_opt fixed, fine-tune the diffusion model on the same loss so that it
reconstructs x from e_opt faithfully. (C) Generation: sample from noise with the fine-tuned model and the
interpolated embedding e = eta e_tgt + (1 - eta) e_opt; eta trades fidelity to the photo for the edit.
Here stage B trains a LoRA adapter (peft, via diffusers' ``unet.add_adapter``) instead of all UNet weights,
and it is removed afterwards, leaving the shared UNet bit-identical. The embedding and the LoRA weights are
optimised in float32 (the frozen base UNet runs in the backbone's dtype). Step budgets default to a quick
demo; the paper uses 100 embedding steps (lr 1e-3) and 1500 fine-tuning steps on Imagen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline

from methods.core.inversion import encode_image, encode_prompt
from methods.core.registry import register
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

logger = logging.getLogger(__name__)

ADAPTER = "imagic"
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@register
class Imagic(Method):
    name = "imagic"
    label = "Imagic"
    condition = Condition.TEXT
    strategy = Strategy.TEST_TIME_FINETUNING
    paper = Paper(
        "Imagic: Text-Based Real Image Editing with Diffusion Models", 2023, "https://arxiv.org/abs/2210.09276"
    )
    summary = "Optimise a text embedding and a LoRA on the photo, then generate from an interpolated embedding."
    params = (
        IntParam("embedding_steps", 30, 1, 1000, help="Stage A: Adam steps on the text embedding (paper: 100)."),
        FloatParam("embedding_lr", 1e-3, 1e-5, 1e-1, step=1e-4, help="Stage A learning rate (paper: 1e-3)."),
        IntParam("lora_steps", 30, 0, 2000, help="Stage B: Adam steps on the LoRA (paper: 1500, full model)."),
        FloatParam("lora_lr", 1e-4, 1e-6, 1e-2, step=1e-5, help="Stage B learning rate of the LoRA weights."),
        IntParam("lora_rank", 4, 1, 64, help="Rank of the LoRA on the attention projections."),
        IntParam(
            "timesteps_per_step",
            4,
            1,
            16,
            help="Each step averages the loss over this many stratified timesteps (1 = one random t per step).",
        ),
        FloatParam("eta", 0.7, 0.0, 1.0, step=0.05, help="e = eta e_tgt + (1 - eta) e_opt (paper: about 0.7)."),
    )
    requires = ("image", "prompt")

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone, unet = ctx.backbone, ctx.backbone.unet
        steps = max(1, inputs.steps)
        total = params["embedding_steps"] + params["lora_steps"] + steps
        latents = encode_image(backbone, inputs.image)
        target, negative = encode_prompt(backbone, inputs.prompt, inputs.negative_prompt)
        noise_scheduler = backbone.scheduler_copy(DDPMScheduler)

        def report(offset: int) -> Callable[[int], None]:
            return lambda step: ctx.report(offset + step, total)

        # A. the text embedding that reconstructs the photo (UNet frozen)
        e_opt = target.detach().float().clone().requires_grad_(True)
        embedding_losses = optimise(
            unet, [e_opt], latents, lambda: e_opt, noise_scheduler, ctx.generator,
            params["embedding_steps"], params["embedding_lr"], params["timesteps_per_step"], report(0),
        )  # fmt: skip
        e_opt = e_opt.detach()

        with lora_adapter(unet, params["lora_rank"]) as lora_params:
            # B. a LoRA that makes the UNet reconstruct the photo from e_opt
            lora_losses = optimise(
                unet, lora_params, latents, lambda: e_opt, noise_scheduler, ctx.generator,
                params["lora_steps"], params["lora_lr"], params["timesteps_per_step"],
                report(params["embedding_steps"]),
            )  # fmt: skip
            # C. generate with the interpolated embedding and the fine-tuned UNet
            eta = params["eta"]
            embeds = (eta * target.float() + (1 - eta) * e_opt).to(target.dtype)
            done = params["embedding_steps"] + params["lora_steps"]

            def callback(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                ctx.report(done + step + 1, total)
                return {}

            pipe = backbone.pipeline(StableDiffusionPipeline)
            image = pipe(
                prompt_embeds=embeds,
                negative_prompt_embeds=negative,
                height=inputs.image.height,
                width=inputs.image.width,
                num_inference_steps=steps,
                guidance_scale=inputs.guidance,
                generator=ctx.generator,
                callback_on_step_end=callback,
            ).images[0]
        info = {
            "embedding_loss": loss_trend(embedding_losses),
            "lora_loss": loss_trend(lora_losses),
            "embedding_shift": round(float((e_opt - target.float()).norm() / target.float().norm()), 4),
        }
        return MethodOutput(image, info)


def denoising_loss(
    unet: Any, latents: torch.Tensor, embeds: torch.Tensor, scheduler: Any, generator: torch.Generator, count: int
) -> torch.Tensor:
    """The diffusion loss ||target - UNet(x_t, t, e)||^2 in float32 (target eps, or v for v-models), averaged
    over ``count`` timesteps drawn stratified from [0, T): the same objective as one uniform t, less noisy."""
    device = latents.device
    span = scheduler.config.num_train_timesteps
    jitter = torch.rand(count, generator=generator, device=generator.device).cpu()
    t = ((torch.arange(count) + jitter) * span / count).long().clamp(max=span - 1).to(device)
    noise = torch.randn((count, *latents.shape[1:]), generator=generator, device=generator.device).to(device)
    clean = latents.expand(count, -1, -1, -1)
    noisy = scheduler.add_noise(clean, noise, t)
    target = scheduler.get_velocity(clean, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
    context = embeds.to(unet.dtype).expand(count, -1, -1)
    prediction = unet(noisy.to(unet.dtype), t, encoder_hidden_states=context).sample
    return F.mse_loss(prediction.float(), target.float())


def optimise(
    unet: Any,
    parameters: list[torch.Tensor],
    latents: torch.Tensor,
    embeds: Callable[[], torch.Tensor],
    scheduler: Any,
    generator: torch.Generator,
    steps: int,
    lr: float,
    count: int,
    on_step: Callable[[int], None],
) -> list[float]:
    """Adam on ``parameters`` with the denoising loss of the photo; returns the loss of every step."""
    losses: list[float] = []
    if steps == 0:
        return losses
    optimizer = torch.optim.Adam(parameters, lr=lr)
    with torch.enable_grad(), torch.autocast(latents.device.type, enabled=False):
        for step in range(steps):
            loss = denoising_loss(unet, latents, embeds(), scheduler, generator, count)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            on_step(step + 1)
    return losses


def loss_trend(losses: list[float], window: int = 5) -> str:
    """'first -> last' with each end averaged over ``window`` steps (single steps are noisy: random t)."""
    if not losses:
        return "skipped"
    k = max(1, min(window, len(losses) // 2))
    return f"{sum(losses[:k]) / k:.4f} -> {sum(losses[-k:]) / k:.4f}"


@contextmanager
def lora_adapter(unet: Any, rank: int) -> Iterator[list[torch.nn.Parameter]]:
    """A float32 LoRA on the shared UNet's attention projections, always removed again.

    ``delete_adapters`` leaves peft's wrapper layers in place; when the UNet had no adapter before,
    ``unload_lora`` swaps the original Linear modules (the same parameter objects) back in, so the module
    tree, weights and attention processors are exactly as before.
    """
    from peft import LoraConfig

    had_adapters = bool(getattr(unet, "peft_config", None))
    own = vars(unet)
    flag = ("_hf_peft_config_loaded" in own, own.get("_hf_peft_config_loaded"))
    processors = dict(unet.attn_processors)
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    try:
        unet.add_adapter(config, adapter_name=ADAPTER)
        parameters = [p for n, p in unet.named_parameters() if f".{ADAPTER}." in n]
        for parameter in parameters:
            parameter.data = parameter.data.float()
            parameter.requires_grad_(True)
        yield parameters
    finally:
        try:
            if ADAPTER in (getattr(unet, "peft_config", None) or {}):
                unet.delete_adapters(ADAPTER)
        finally:
            if not had_adapters:
                unet.unload_lora()
                if flag[0]:
                    unet._hf_peft_config_loaded = flag[1]
                else:
                    own.pop("_hf_peft_config_loaded", None)
            if dict(unet.attn_processors) != processors:
                unet.set_attn_processor(dict(processors))
