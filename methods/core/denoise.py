"""One diffusers pipeline call with the run's shared settings, so every method that hands the denoising to a
diffusers pipeline passes the prompt, negative prompt, steps, guidance, generator and progress the same way."""

from __future__ import annotations

import inspect
from typing import Any

from PIL import Image

from methods.core.limits import denoising_steps
from methods.core.spec import EditInputs, RunContext


def run_settings(ctx: RunContext, inputs: EditInputs, prompt: str | None = None) -> dict[str, Any]:
    """The pipeline arguments every run shares: prompt (``inputs.prompt`` unless given), negative prompt (None
    when empty), steps, guidance and the run's generator."""
    return {
        "prompt": inputs.prompt if prompt is None else prompt,
        "negative_prompt": inputs.negative_prompt or None,
        "num_inference_steps": inputs.steps,
        "guidance_scale": inputs.guidance,
        "generator": ctx.generator,
    }


def progress(pipe: Any, ctx: RunContext, total: int, done: int = 0) -> dict[str, Any]:
    """The step callback argument of ``pipe`` reporting ``done`` + step of ``total`` to the UI."""
    if "callback_on_step_end" in inspect.signature(pipe.__call__).parameters:
        return {"callback_on_step_end": ctx.diffusers_callback(total, done)}
    # the older pipelines (GLIGEN, DiffEdit, T2I-Adapter) call callback(step, timestep, latents)
    return {"callback": lambda step, timestep, latents: ctx.report(done + step + 1, total)}


def denoise(
    pipe: Any,
    ctx: RunContext,
    inputs: EditInputs,
    *,
    prompt: str | None = None,
    strength: float | None = None,
    size: tuple[int, int] | None = None,
    done: int = 0,
    total: int | None = None,
    **call: Any,
) -> Image.Image:
    """Call ``pipe`` with :func:`run_settings` and :func:`progress`; the first image.

    ``strength`` makes it an image-to-image call: progress then counts the int(steps × strength) steps diffusers
    denoises, and a strength that leaves none is refused with a sentence. ``size`` = (width, height) of the
    output. Progress is ``done`` + the step of ``total`` (default ``done`` + this call's steps), for methods
    that do other work first. Everything in ``call`` goes to the pipeline as it is.
    """
    steps = inputs.steps if strength is None else denoising_steps(inputs.steps, strength)
    kwargs = run_settings(ctx, inputs, prompt)
    kwargs.update(progress(pipe, ctx, done + steps if total is None else total, done))
    if strength is not None:
        kwargs["strength"] = strength
    if size is not None:
        kwargs["width"], kwargs["height"] = size
    return pipe(**kwargs, **call).images[0]
