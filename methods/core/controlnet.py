"""What every ControlNet method shares: its parameters and one call over the shared modules.

ControlNet ("Adding Conditional Control to Text-to-Image Diffusion Models", Zhang et al., ICCV 2023):
a trainable copy of the UNet encoder, joined by zero convolutions, injects a spatial condition (pose,
scribble, segmentation...) into the frozen SD UNet. Each condition's ControlNet is an add-on; the base
modules stay resident. With a source image the edit is image-to-image under control (strength < 1 keeps
more of the source); without one it generates from the condition alone.
"""

from __future__ import annotations

from typing import Any

from diffusers import (
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
)

from methods.core.denoise import progress, run_settings
from methods.core.limits import denoising_steps
from methods.core.spec import EditInputs, FloatParam, MethodOutput, Paper, RunContext

CONTROLNET_PAPER = Paper(
    "Adding Conditional Control to Text-to-Image Diffusion Models", 2023, "https://arxiv.org/abs/2302.05543"
)

CONTROL_PARAMS = (
    FloatParam("conditioning_scale", 1.0, 0.0, 2.0, help="Weight of the ControlNet residuals."),
    FloatParam("control_start", 0.0, 0.0, 1.0, help="Fraction of the steps at which control starts."),
    FloatParam("control_end", 1.0, 0.0, 1.0, help="Fraction of the steps at which control stops."),
    FloatParam("strength", 1.0, 0.05, 1.0, help="With a source photo: how much of it is re-noised (1 = all)."),
)


def _control_kwargs(
    ctx: RunContext, inputs: EditInputs, params: dict[str, Any], scale: float | list[float], size: tuple[int, int]
) -> dict[str, Any]:
    """The keyword arguments every ControlNet pipeline call shares (prompt, steps, guidance, control window)."""
    width, height = size
    return {
        **run_settings(ctx, inputs),
        "controlnet_conditioning_scale": scale,
        "control_guidance_start": params["control_start"],
        "control_guidance_end": max(params["control_end"], params["control_start"]),
        "height": height,
        "width": width,
    }


def _at_size(image: Any, size: tuple[int, int]) -> Any:
    return image if image.size == size else image.resize(size)


def _control_pipeline(
    ctx: RunContext,
    inputs: EditInputs,
    params: dict[str, Any],
    kwargs: dict[str, Any],
    controlnet: Any,
    control: Any,
    masked: bool = False,
    unet: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """The pipeline for one or several ControlNets (``control``: a map, or a list with one per ControlNet) and
    its image arguments: inpainting inside ``inputs.mask`` when ``masked``, image-to-image under control with a
    source photo, else generation from the condition alone."""
    if masked:
        swapped = {"unet": unet} if unet is not None else {}
        pipe = ctx.backbone.pipeline(StableDiffusionControlNetInpaintPipeline, controlnet=controlnet, **swapped)
        kwargs.update(image=inputs.image, mask_image=inputs.mask, control_image=control, strength=params["strength"])
    elif inputs.image is not None:
        pipe = ctx.backbone.pipeline(StableDiffusionControlNetImg2ImgPipeline, controlnet=controlnet)
        kwargs.update(image=inputs.image, control_image=control, strength=params["strength"])
    else:
        pipe = ctx.backbone.pipeline(StableDiffusionControlNetPipeline, controlnet=controlnet)
        kwargs.update(image=control)
    return pipe, kwargs


def controlnet_call(
    ctx: RunContext,
    inputs: EditInputs,
    params: dict[str, Any],
    addon: str,
    masked: bool = False,
    unet: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """The pipeline and keyword arguments of one ControlNet run (shared by the methods and their tests).

    ``masked``: regenerate only inside ``inputs.mask`` (``StableDiffusionControlNetInpaintPipeline``); ``unet``
    swaps in another UNet there (a 9-channel inpainting UNet), else the shared one is used.
    """
    controlnet = ctx.backbone.addon(addon)
    size = (inputs.image or inputs.control_image).size
    kwargs = _control_kwargs(ctx, inputs, params, params["conditioning_scale"], size)
    control = _at_size(inputs.control_image, size)
    return _control_pipeline(ctx, inputs, params, kwargs, controlnet, control, masked=masked, unet=unet)


def denoise(ctx: RunContext, pipe: Any, kwargs: dict[str, Any]) -> Any:
    """Run one pipeline call, reporting progress over the steps it takes (strength x steps from a photo)."""
    steps = denoising_steps(kwargs["num_inference_steps"], kwargs.get("strength", 1.0))
    return pipe(**kwargs, **progress(pipe, ctx, steps)).images[0]


def run_controlnet(ctx: RunContext, inputs: EditInputs, params: dict[str, Any], addon: str) -> MethodOutput:
    image = denoise(ctx, *controlnet_call(ctx, inputs, params, addon))
    mode = "img2img under control" if inputs.image is not None else "generated from the condition"
    return MethodOutput(image, info={"mode": mode})


def multi_controlnet_call(
    ctx: RunContext, inputs: EditInputs, params: dict[str, Any], controls: list[tuple[str, Any, float]]
) -> tuple[Any, dict[str, Any]]:
    """Several ControlNets at once: ``controls`` is a list of (add-on, condition map, conditioning scale).

    diffusers' ``MultiControlNetModel`` runs each ControlNet on its own map and sums their scaled residuals
    into the UNet; the pipeline is the single-ControlNet one (img2img with a source photo, else generation).
    """
    from diffusers import MultiControlNetModel

    nets = MultiControlNetModel([ctx.backbone.addon(addon) for addon, _, _ in controls])
    size = (inputs.image or controls[0][1]).size
    kwargs = _control_kwargs(ctx, inputs, params, [float(scale) for _, _, scale in controls], size)
    maps = [_at_size(image, size) for _, image, _ in controls]
    return _control_pipeline(ctx, inputs, params, kwargs, nets, maps)
