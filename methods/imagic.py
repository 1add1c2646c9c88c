"""Imagic: Text-Based Real Image Editing with Diffusion Models (Kawar et al., CVPR 2023).

https://arxiv.org/abs/2210.09276 — Three stages on one photo x and a target text. (A) Text embedding
optimisation: starting from the target embedding e_tgt, optimise e_opt (the model frozen) with the denoising
loss ||eps - eps_theta(sqrt(a_t) x + sqrt(1 - a_t) eps, t, e)||^2 at random t, so that e_opt "describes" the
photo. (B) Model fine-tuning: with e_opt fixed, fine-tune the diffusion model on the same loss so that it
reconstructs x from e_opt faithfully. (C) Generation: sample from noise with the fine-tuned model and the
interpolated embedding e = eta e_tgt + (1 - eta) e_opt; eta trades fidelity to the photo for the edit.
Here stage B trains a LoRA adapter (peft, via diffusers' ``unet.add_adapter``) instead of all UNet weights,
and the runner's ``borrowed()`` removes it afterwards, leaving the shared UNet bit-identical. The embedding
and the LoRA weights are optimised as float32 master copies (the frozen base UNet runs in the backbone's dtype;
in float16 the loss is scaled, see ``methods.core.half``). Each step
averages the loss over a few stratified timesteps (the same objective as one uniform t, with less noise); the
loss on a fixed set of (t, noise) probes is reported before and after each stage. Step budgets default to a
quick demo with larger learning rates; the paper uses 100 embedding steps at lr 1e-3 and 1500 full fine-tuning
steps on Imagen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline

from methods.core.half import LossScaler, make_master, master
from methods.core.latents import encode_image, encode_prompt
from methods.core.registry import register
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT
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
        FloatParam("embedding_lr", 1e-2, 1e-5, 1e-1, step=1e-4, help="Stage A learning rate (paper: 1e-3)."),
        IntParam("lora_steps", 30, 0, 2000, help="Stage B: Adam steps on the LoRA (paper: 1500 on the full model)."),
        FloatParam("lora_lr", 1e-3, 1e-6, 1e-2, step=1e-5, help="Stage B learning rate of the LoRA weights."),
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
    requires = (IMAGE, PROMPT)
    optional = (NEGATIVE_PROMPT,)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone, unet = ctx.backbone, ctx.backbone.unet
        steps, tuned = max(1, inputs.steps), params["embedding_steps"] + params["lora_steps"]
        total = tuned + steps
        target, negative = encode_prompt(backbone, inputs.prompt, inputs.negative_prompt)
        photo = Reconstruction(
            unet,
            encode_image(backbone, inputs.image),
            backbone.scheduler_copy(DDPMScheduler),
            ctx.generator,
            params["timesteps_per_step"],
        )
        probes = [photo.probe_loss(target)]

        # A. the text embedding that reconstructs the photo (UNet frozen)
        def progress(offset: int) -> Callable[[int], None]:
            return lambda step: ctx.report(offset + step, total)

        e_opt = master(target)
        a_steps, b_steps = params["embedding_steps"], params["lora_steps"]
        scaler_a, scaler_b = LossScaler(unet.dtype), LossScaler(unet.dtype)
        losses_a = optimise(photo, [e_opt], lambda: e_opt, a_steps, params["embedding_lr"], progress(0), scaler_a)
        e_opt = e_opt.detach()
        probes.append(photo.probe_loss(e_opt))

        with lora_adapter(unet, params["lora_rank"]) as lora_params:
            # B. a LoRA that makes the UNet reconstruct the photo from e_opt
            lr_b = params["lora_lr"]
            losses_b = optimise(photo, lora_params, lambda: e_opt, b_steps, lr_b, progress(a_steps), scaler_b)
            probes.append(photo.probe_loss(e_opt))

            # C. generate from noise with the interpolated embedding and the fine-tuned UNet
            eta = params["eta"]
            embeds = (eta * target.float() + (1 - eta) * e_opt).to(target.dtype)
            image = backbone.pipeline(StableDiffusionPipeline)(
                prompt_embeds=embeds,
                negative_prompt_embeds=negative,
                height=inputs.image.height,
                width=inputs.image.width,
                num_inference_steps=steps,
                guidance_scale=inputs.guidance,
                generator=ctx.generator,
                callback_on_step_end=ctx.diffusers_callback(total, tuned),
            ).images[0]
        info = {
            "embedding_loss": loss_trend(losses_a),
            "lora_loss": loss_trend(losses_b),
            "probe_loss": " -> ".join(f"{p:.4f}" for p in probes),
            "embedding_shift": round(float((e_opt - target.float()).norm() / target.float().norm()), 4),
            **{f"embedding_{key}": value for key, value in scaler_a.report().items()},
            **{f"lora_{key}": value for key, value in scaler_b.report().items()},
        }
        return MethodOutput(image, info)


@dataclass
class Reconstruction:
    """The denoising objective on one photo's latent: ||target - UNet(x_t, t, e)||^2 in float32 (target eps,
    or v for v-prediction models), averaged over ``count`` timesteps drawn stratified from [0, T)."""

    unet: Any
    latents: torch.Tensor
    scheduler: Any
    generator: torch.Generator
    count: int
    probes: tuple[torch.Tensor, torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.probes = self.draw(8)  # fixed (t, noise) pairs to compare the loss before and after a stage

    def draw(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        span, device = self.scheduler.config.num_train_timesteps, self.latents.device
        jitter = torch.rand(count, generator=self.generator, device=self.generator.device).cpu()
        t = ((torch.arange(count) + jitter) * span / count).long().clamp(max=span - 1)
        noise = torch.randn((count, *self.latents.shape[1:]), generator=self.generator, device=self.generator.device)
        return t.to(device), noise.to(device)

    def loss(self, embeds: torch.Tensor, draw: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        t, noise = draw or self.draw(self.count)
        clean = self.latents.expand(len(t), -1, -1, -1)
        noisy = self.scheduler.add_noise(clean, noise, t)
        v_model = self.scheduler.config.prediction_type == "v_prediction"
        target = self.scheduler.get_velocity(clean, noise, t) if v_model else noise
        unet = self.unet
        context = embeds.to(unet.dtype).expand(len(t), -1, -1)
        prediction = unet(noisy.to(unet.dtype), t, encoder_hidden_states=context).sample
        return F.mse_loss(prediction.float(), target.float())

    @torch.no_grad()
    def probe_loss(self, embeds: torch.Tensor) -> float:
        return float(self.loss(embeds, self.probes))


def optimise(
    objective: Reconstruction,
    parameters: list[torch.Tensor],
    embeds: Callable[[], torch.Tensor],
    steps: int,
    lr: float,
    on_step: Callable[[int], None],
    scaler: LossScaler,
) -> list[float]:
    """Adam on ``parameters`` (float32 masters) with the photo's denoising loss, scaled by ``scaler`` in float16;
    returns the loss of every step (a skipped step's included)."""
    losses: list[float] = []
    if steps == 0:
        return losses
    optimizer = torch.optim.Adam(parameters, lr=lr)
    with torch.enable_grad(), torch.autocast(objective.latents.device.type, enabled=False):
        for step in range(steps):
            loss = objective.loss(embeds())
            optimizer.zero_grad(set_to_none=True)
            scaler.backward(loss)
            scaler.step(optimizer)
            losses.append(float(loss.detach()))
            on_step(step + 1)
    return losses


def loss_trend(losses: list[float], window: int = 5) -> str:
    """'first -> last' with each end averaged over ``window`` steps (each step draws its own t and noise)."""
    if not losses:
        return "skipped"
    k = max(1, min(window, len(losses) // 2))
    return f"{sum(losses[:k]) / k:.4f} -> {sum(losses[-k:]) / k:.4f}"


@contextmanager
def lora_adapter(unet: Any, rank: int) -> Iterator[list[torch.nn.Parameter]]:
    """A float32 LoRA on the shared UNet's attention projections, trainable, for the block (float32 masters on a
    half-precision UNet: peft casts the layer input to the LoRA's dtype and the sum back to the UNet's).

    The adapter is shared state: the runner's ``borrowed()`` deletes it and swaps the original Linear modules
    (the same parameter objects) back in, so the module tree, weights, flags and processors are as before.
    """
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    unet.add_adapter(config, adapter_name=ADAPTER)
    yield make_master(p for n, p in unet.named_parameters() if f".{ADAPTER}." in n)
