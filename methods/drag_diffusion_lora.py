"""DragDiffusion with its LoRA step (Shi et al., CVPR 2024): fine-tune the model on the photo, then drag.

https://arxiv.org/abs/2306.14435 — The paper's full method. Before the drag, a LoRA (rank 16 on the UNet's
attention projections, 80 Adam steps at lr 5e-4 in the paper and the official code) is trained on the single
photo with the ordinary denoising loss ||eps - eps_theta(sqrt(a_t) z_0 + sqrt(1 - a_t) eps, t, c)||^2 at random
t and the photo's prompt c, so that inverting and re-denoising the photo keeps its identity; the paper shows the
drag without it loses the object's appearance. Inversion, motion supervision, point tracking and denoising then
run exactly as in ``methods.drag_diffusion`` (read there), all through the tuned UNet. Here the LoRA is a peft
adapter added with diffusers' ``unet.add_adapter`` and trained as float32 masters (loss-scaled in float16, see
``methods.core.half``); ``lora_scale`` weighs it at sampling (0 = the base UNet, i.e. plain DragDiffusion). The
runner's ``borrowed()`` deletes the adapter afterwards, so the shared UNet is bit-identical after the run. The
default step budget is smaller than the paper's so that a CPU run stays short; raise ``lora_steps`` to 80 to
match it. Each LoRA step draws one timestep (batch 1, as the official trainer); the loss on 8 fixed
(t, noise) probes before and after tuning shows the fit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from diffusers import DDPMScheduler

from methods.core.costs import LORA_STEP
from methods.core.drag_regions import editable_cells
from methods.core.finetune import Reconstruction, lora_adapter, loss_trend, optimise
from methods.core.half import LossScaler
from methods.core.latents import encode_image, encode_prompt
from methods.core.registry import register
from methods.core.spec import EditInputs, FloatParam, IntParam, MethodOutput, Paper, RunContext, Strategy
from methods.drag_diffusion import DragDiffusion, check_work, drag_points, planned_steps

ADAPTER = "drag_diffusion"


@register
class DragDiffusionLoRA(DragDiffusion):
    name = "drag_diffusion_lora"
    label = "DragDiffusion + LoRA"
    strategy = Strategy.TEST_TIME_FINETUNING
    paper = Paper(
        "DragDiffusion: Harnessing Diffusion Models for Interactive Point-based Image Editing (with LoRA)",
        2024,
        "https://arxiv.org/abs/2306.14435",
    )
    summary = "Fine-tune a LoRA on the photo (identity), then DragDiffusion's latent optimisation through it."
    params = (
        IntParam("lora_steps", 20, 0, 400, help="Adam steps of the LoRA on the photo (paper: 80)."),
        FloatParam("lora_lr", 5e-4, 1e-6, 1e-2, step=1e-5, help="LoRA learning rate (paper: 5e-4)."),
        IntParam("lora_rank", 16, 1, 64, help="LoRA rank on the attention projections (paper: 16)."),
        FloatParam("lora_scale", 1.0, 0.0, 1.0, help="Weight of the tuned LoRA while dragging (0 = the base UNet)."),
        *DragDiffusion.params,
    )

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        # LoRA steps (one draw each) and 8 probes before and after, then DragDiffusion through the LoRA
        return LORA_STEP * params["lora_steps"] + 2 * 8 + super().cost(steps, params)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. refuse unusable drags and masks before the costly tuning
        backbone, unet = ctx.backbone, ctx.backbone.unet
        drag_points(inputs.drags, inputs.image.size)
        factor = backbone.vae_scale_factor
        editable_cells(inputs.mask, (inputs.image.height // factor, inputs.image.width // factor), backbone.device)
        drag_params = {param.name: params[param.name] for param in DragDiffusion.params}
        check_work(inputs, drag_params)
        tuning = params["lora_steps"]
        total = tuning + planned_steps(inputs, drag_params)

        # 2. the photo's denoising objective under its prompt
        embeds, _ = encode_prompt(backbone, inputs.prompt)
        photo = Reconstruction(
            unet, encode_image(backbone, inputs.image), backbone.scheduler_copy(DDPMScheduler), ctx.generator, 1
        )
        scaler = LossScaler(unet.dtype)
        with lora_adapter(unet, params["lora_rank"], ADAPTER) as lora_params:
            # 3. tune the LoRA, then freeze it at the chosen weight
            probes = [photo.probe_loss(embeds)]
            losses = optimise(
                photo,
                lora_params,
                lambda: embeds,
                tuning,
                params["lora_lr"],
                lambda step: ctx.report(step, total),
                scaler,
            )
            probes.append(photo.probe_loss(embeds))
            for parameter in lora_params:
                parameter.requires_grad_(False)
            unet.set_adapters([ADAPTER], weights=[params["lora_scale"]])

            # 4. DragDiffusion through the tuned UNet (its progress follows the tuning's)
            shifted = dataclasses.replace(ctx, report=lambda step, _: ctx.report(tuning + step, total))
            output = super().run(shifted, inputs, drag_params)
        output.info = {
            "lora_loss": loss_trend(losses),
            "lora_probe_loss": " -> ".join(f"{p:.4f}" for p in probes),
            **{f"lora_{key}": value for key, value in scaler.report().items()},
            **output.info,
        }
        return output
