"""What every T2I-Adapter method shares: its parameters and one call over the shared modules.

T2I-Adapter ("T2I-Adapter: Learning Adapters to Dig out More Controllable Ability for Text-to-Image
Diffusion Models", Mou et al., AAAI 2024): a small convolutional network, trained while SD stays frozen,
turns the condition map (pose skeleton, sketch...) into one feature map per UNet encoder level; the
features are added to the encoder's hidden states at every denoising step. Unlike a ControlNet, the adapter
runs once per image, not once per step. diffusers' ``StableDiffusionAdapterPipeline`` generates from the
condition (it has no image-to-image mode, so a source photo only sets the output size).

The conditioning factor is diffusers' ``adapter_conditioning_factor`` (SDXL adapter pipeline): the adapter
features are added during the first ``int(steps x factor)`` steps only, which leaves the late, detail-forming
steps free. The SD 1.5 adapter pipeline lacks it, so :func:`adapter_for_first_steps` applies it with a
forward pre-hook on the UNet that drops ``down_intrablock_additional_residuals`` from that step on, and
removes the hook afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers import StableDiffusionAdapterPipeline

from methods.core.denoise import progress, run_settings
from methods.core.spec import EditInputs, FloatParam, MethodOutput, Paper, RunContext

T2I_ADAPTER_PAPER = Paper(
    "T2I-Adapter: Learning Adapters to Dig out More Controllable Ability for Text-to-Image Diffusion Models",
    2024,
    "https://arxiv.org/abs/2302.08453",
)

ADAPTER_PARAMS = (
    FloatParam(
        "adapter_conditioning_scale", 1.0, 0.0, 2.0, help="Weight of the adapter features added to the UNet encoder."
    ),
    FloatParam(
        "adapter_conditioning_factor",
        1.0,
        0.0,
        1.0,
        help="Fraction of the steps (from the first) during which the adapter is applied.",
    ),
)


@contextmanager
def adapter_for_first_steps(unet: torch.nn.Module, steps: int) -> Iterator[None]:
    """Let the UNet receive the adapter features during its first ``steps`` calls only (one call per step)."""
    calls = 0

    def drop_late_features(module: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls > steps:
            kwargs["down_intrablock_additional_residuals"] = None
        return args, kwargs

    handle = unet.register_forward_pre_hook(drop_late_features, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def adapter_call(ctx: RunContext, inputs: EditInputs, params: dict[str, Any], addon: str) -> tuple[Any, dict[str, Any]]:
    """The pipeline and keyword arguments of one T2I-Adapter run (shared by the methods and their tests)."""
    adapter = ctx.backbone.addon(addon)
    width, height = (inputs.image or inputs.control_image).size
    # The sketch adapter reads one grey channel, the pose adapter RGB; the pipeline takes the channels of the
    # PIL image as they are.
    control = inputs.control_image.convert("L" if adapter.config.in_channels == 1 else "RGB")
    pipe = ctx.backbone.pipeline(StableDiffusionAdapterPipeline, adapter=adapter)
    kwargs: dict[str, Any] = {
        **run_settings(ctx, inputs),
        "image": control,
        "height": height,
        "width": width,
        "adapter_conditioning_scale": params["adapter_conditioning_scale"],
    }
    return pipe, kwargs


def run_adapter(ctx: RunContext, inputs: EditInputs, params: dict[str, Any], addon: str) -> MethodOutput:
    pipe, kwargs = adapter_call(ctx, inputs, params, addon)
    steps = inputs.steps
    adapted = int(steps * params["adapter_conditioning_factor"])

    with adapter_for_first_steps(pipe.unet, adapted):
        image = pipe(**kwargs, **progress(pipe, ctx, steps)).images[0]
    info = {"adapter steps": f"{adapted}/{steps}"}
    if inputs.image is not None:
        info["mode"] = "generated from the condition (no img2img adapter pipeline; the photo sets the size)"
    return MethodOutput(image, info=info)
