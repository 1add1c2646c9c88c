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

from collections.abc import Callable
from typing import Any

from diffusers import DDPMScheduler, StableDiffusionPipeline

from methods.core.costs import GRADIENT_STEP, LORA_STEP
from methods.core.finetune import Reconstruction, lora_adapter, loss_trend, optimise
from methods.core.half import LossScaler, master
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

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        per_step = params["timesteps_per_step"]  # each Adam step averages this many (t, noise) draws
        tuning = per_step * (GRADIENT_STEP * params["embedding_steps"] + LORA_STEP * params["lora_steps"])
        return tuning + 3 * 8 + 2.0 * steps  # stages A + B, 8 probes after each stage and before, then CFG

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

        with lora_adapter(unet, params["lora_rank"], ADAPTER) as lora_params:
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
