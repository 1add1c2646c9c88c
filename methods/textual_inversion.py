"""An Image is Worth One Word: Personalizing Text-to-Image Generation using Textual Inversion (Gal et al., 2023).

https://arxiv.org/abs/2208.01618 — Test-time fine-tuning of one word: a new pseudo-word ``<ref>`` is added
to the tokenizer and its embedding vector v (initialised from a coarse word such as "object") is optimised,
with the text encoder and the UNet frozen, to minimise the usual denoising loss on the reference image:
E_{t, eps} || eps - eps_theta(z_t, t, c("a photo of <ref>")) ||^2, where z_t is the reference's VAE latent
noised to a random timestep and the prompt comes from a few neutral templates. The learnt vector then
behaves like a word: "a photo of <ref>" generates the concept, and prompts can place it in new contexts;
with a source photo the hub edits it image-to-image (SDEdit) with that prompt. The paper optimises for
thousands of steps; here a few dozen steps run per request (a demo of the mechanism, not a converged
embedding). The token is added with diffusers' ``load_textual_inversion``; the runner's ``borrowed()`` then
puts the shared tokenizer, embedding matrix (object, shape and values) and text-encoder config back exactly
as they were, also when the run fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from PIL import Image, ImageOps

from methods.core.costs import GRADIENT_STEP
from methods.core.denoise import denoise
from methods.core.half import LossScaler, master
from methods.core.latents import encode_image
from methods.core.limits import denoising_steps
from methods.core.registry import register
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT, REFERENCE
from methods.core.spec import (
    Condition,
    EditInputs,
    FloatParam,
    InputError,
    IntParam,
    Method,
    MethodOutput,
    Paper,
    Param,
    RunContext,
    Strategy,
)

TOKEN = "<ref>"
TEMPLATES = (  # from the paper's object templates
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a good photo of a {}",
)
EVAL_TIMESTEPS = (100, 300, 500, 700, 900)  # fixed (timestep, noise) pairs on which the loss is reported


@dataclass
class Learned:
    vector: torch.Tensor
    train_losses: list[float]
    eval_before: float
    eval_after: float
    scaling: dict[str, float | int]  # float16 only: the final loss scale and the skipped steps


@register
class TextualInversion(Method):
    name = "textual_inversion"
    label = "Textual Inversion"
    condition = Condition.REFERENCE
    strategy = Strategy.TEST_TIME_FINETUNING
    paper = Paper(
        "An Image is Worth One Word: Personalizing Text-to-Image Generation using Textual Inversion",
        2023,
        "https://arxiv.org/abs/2208.01618",
    )
    summary = f"Learns a new word {TOKEN} from the reference (only its embedding is trained), then prompts with it."
    params = (
        IntParam("train_steps", 30, 0, 1000, help="Optimisation steps for the new embedding (the paper uses ~5000)."),
        FloatParam("learning_rate", 5e-3, 1e-4, 0.1, step=1e-4, help="Adam learning rate for the embedding."),
        Param("init_word", "text", "object", help="The new word starts from this word's embedding (token mean)."),
        FloatParam("strength", 0.7, 0.05, 1.0, help="With a source photo: how far it is noised (img2img)."),
    )
    requires = (REFERENCE,)
    optional = (IMAGE, PROMPT, NEGATIVE_PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        # one (t, noise) draw per training step (gradient to the new word), two 5-draw evaluations, then CFG
        return GRADIENT_STEP * params["train_steps"] + 2.0 * len(EVAL_TIMESTEPS) + 2.0 * steps

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        backbone = ctx.backbone
        edit = inputs.image is not None
        pipe = backbone.pipeline(StableDiffusionImg2ImgPipeline if edit else StableDiffusionPipeline)
        init = init_embedding(pipe, params["init_word"])
        prompt = target_prompt(inputs.prompt)
        sampling = denoising_steps(inputs.steps, params["strength"]) if edit else inputs.steps
        total = params["train_steps"] + sampling
        latents = encode(backbone, inputs.reference)
        trainer = torch.Generator(device=ctx.generator.device).manual_seed(ctx.seed)  # sampling keeps ctx.generator
        steps, rate = params["train_steps"], params["learning_rate"]
        token_id = add_token(pipe, TOKEN, init)
        learned = learn_embedding(
            pipe, latents, token_id, init, steps, rate, trainer, lambda i, _: ctx.report(i, total)
        )
        with torch.no_grad():
            pipe.text_encoder.get_input_embeddings().weight[token_id] = learned.vector.to(init.dtype)
        progress = {"prompt": prompt, "done": steps, "total": total}
        if edit:
            image = denoise(pipe, ctx, inputs, strength=params["strength"], image=inputs.image, **progress)
        else:
            image = denoise(pipe, ctx, inputs, size=(backbone.size, backbone.size), **progress)
        info = {
            "prompt": prompt,
            "eval loss before": round(learned.eval_before, 6),
            "eval loss after": round(learned.eval_after, 6),
            **learned.scaling,
        }
        return MethodOutput(image, info)


def target_prompt(prompt: str) -> str:
    """The user's prompt if it names the new word, else "a photo of <ref>" (plus the prompt as context)."""
    prompt = prompt.strip()
    if TOKEN in prompt:
        return prompt
    return f"a photo of {TOKEN}" + (f", {prompt}" if prompt else "")


def init_embedding(pipe: Any, word: str) -> torch.Tensor:
    ids = pipe.tokenizer(word.strip(), add_special_tokens=False).input_ids if word.strip() else []
    if not ids:
        raise InputError("Please give Textual Inversion an init word (e.g. “object”, “dog”, “painting”).")
    with torch.no_grad():
        return pipe.text_encoder.get_input_embeddings().weight[ids].mean(dim=0).clone()


def encode(backbone: Any, reference: Image.Image) -> torch.Tensor:
    """The reference, centre-cropped to a square at the model's resolution, as a VAE latent (mode)."""
    square = ImageOps.fit(reference.convert("RGB"), (backbone.size, backbone.size), Image.Resampling.LANCZOS)
    return encode_image(backbone, square, backbone.dtype)


def add_token(pipe: Any, token: str, init: torch.Tensor) -> int:
    """Add ``token`` with embedding ``init`` to the shared tokenizer and text encoder (diffusers'
    ``load_textual_inversion``); return its id. The runner's ``borrowed()`` removes it again."""
    pipe.load_textual_inversion({token: init}, token=token)
    return pipe.tokenizer.convert_tokens_to_ids(token)


def learn_embedding(
    pipe: Any,
    latents: torch.Tensor,
    token_id: int,
    init: torch.Tensor,
    steps: int,
    learning_rate: float,
    generator: torch.Generator,
    report: Callable[[int, int], None] = lambda step, total: None,
) -> Learned:
    """Optimise only the new word's vector with the denoising loss; the models stay frozen. The vector is a
    float32 master copy, cast to the text encoder's dtype where it is injected (``methods.core.half``)."""
    tokenizer, text_encoder, unet = pipe.tokenizer, pipe.text_encoder, pipe.unet
    scheduler, device = pipe.scheduler, latents.device
    velocity = scheduler.config.get("prediction_type", "epsilon") == "v_prediction"
    vector = master(init)
    prompts = [template.format(TOKEN) for template in TEMPLATES]
    ids = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids.to(device)

    def inject(module: Any, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.where((args[0] == token_id)[..., None], vector.to(output.dtype), output)

    def loss_on(rows: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        batch = latents.expand(len(timesteps), -1, -1, -1)
        noisy = scheduler.add_noise(batch, noise, timesteps)
        context = text_encoder(ids[rows])[0]
        prediction = unet(noisy, timesteps, encoder_hidden_states=context).sample
        target = scheduler.get_velocity(batch, noise, timesteps) if velocity else noise
        return F.mse_loss(prediction.float(), target.float())

    evaluation = (
        torch.arange(len(EVAL_TIMESTEPS), device=device) % len(prompts),
        torch.tensor(EVAL_TIMESTEPS, device=device),
        torch.randn((len(EVAL_TIMESTEPS), *latents.shape[1:]), generator=generator, device=device).to(latents.dtype),
    )
    handle = text_encoder.get_input_embeddings().register_forward_hook(inject)
    try:
        with torch.no_grad():
            eval_before = float(loss_on(*evaluation))
        optimizer = torch.optim.Adam([vector], lr=learning_rate)
        scaler = LossScaler(unet.dtype)
        losses = []
        with torch.enable_grad():
            for step in range(steps):
                row = torch.randint(len(prompts), (1,), generator=generator, device=device)
                t = torch.randint(scheduler.config.num_train_timesteps, (1,), generator=generator, device=device)
                noise = torch.randn(latents.shape, generator=generator, device=device).to(latents.dtype)
                loss = loss_on(row, t, noise)
                optimizer.zero_grad(set_to_none=True)
                scaler.backward(loss)
                scaler.step(optimizer)
                losses.append(loss.item())
                report(step + 1, steps)
        with torch.no_grad():
            eval_after = float(loss_on(*evaluation))
    finally:
        handle.remove()
    return Learned(vector.detach(), losses, eval_before, eval_after, scaler.report())
