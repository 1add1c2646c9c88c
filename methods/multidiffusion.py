"""MultiDiffusion: Fusing Diffusion Paths for Controlled Image Generation (Bar-Tal et al., ICML 2023), regions.

https://arxiv.org/abs/2302.08113 — A pre-trained model, no training and no gradients. The region-based variant
gives each region i a mask M_i and a prompt y_i (the background is what no box covers, with the scene prompt).
Every step takes one ordinary denoising step Psi(J_t | y_i) of the *whole* latent per region and fuses them per
pixel by the least-squares solution of the paper's Eq. 5: J_{t-1} = sum_i M_i * Psi(J_t | y_i) / sum_i M_i, so
each region follows its own prompt while sharing one image. *Bootstrapping* (the official region-based code:
20 of 50 steps, i.e. 0.4) replaces, for the first steps, everything outside a foreground region in that region's
input by a random constant-colour image noised to the step's level, so each object fills its tight box instead
of bleeding into the background. Here: DDIM as in the official code, classifier-free guidance per region, one
window (the tab's image fits the model; the paper's sliding windows matter for panoramas), the box phrase as
the region's prompt. Photo editing (our addition, the paper only generates): the photo is DDIM-inverted to
``inversion_strength`` of the schedule and the background region follows the photo's own inversion path (its latent at
every step is the inversion latent of the same level), so only the boxes are regenerated, region by region;
pixels outside the boxes are pasted back from the photo.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from methods.core.box_attention import (
    EDIT,
    GENERATE,
    box_region,
    check_layout_boxes,
    edits_photo,
    mode_params,
)
from methods.core.costs import TYPICAL_BOXES, denoised
from methods.core.ddim import sampling_schedule
from methods.core.images import draw_boxes
from methods.core.inversion import invert_image
from methods.core.latents import decode_latents, encode_image, encode_prompt, predict_noise
from methods.core.limits import denoising_steps
from methods.core.masked_edit import finish, mask_params
from methods.core.masks import covered_cells
from methods.core.registry import register
from methods.core.slots import BOXES, IMAGE, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import (
    Box,
    Condition,
    EditInputs,
    FloatParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)


def region_masks(boxes: list[Box], size: tuple[int, int], factor: int, device: torch.device) -> torch.Tensor:
    """(1 + boxes, 1, h, w) binary masks on the latent grid of an image of ``size`` = (width, height): the
    background (what no box covers) first, then each box (every cell any of its pixels touches)."""
    grid = (size[1] // factor, size[0] // factor)
    regions = [covered_cells(box_region([box], size), grid, device)[0] for box in boxes]
    foreground = torch.stack(regions)
    return torch.cat([(1 - foreground.sum(dim=0, keepdim=True)).clamp(min=0), foreground])


@register
class MultiDiffusionRegions(Method):
    name = "multidiffusion"
    label = "MultiDiffusion (regions)"
    condition = Condition.LAYOUT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "MultiDiffusion: Fusing Diffusion Paths for Controlled Image Generation",
        2023,
        "https://arxiv.org/abs/2302.08113",
    )
    summary = "One denoising path per box prompt, fused per pixel every step; edits a photo box by box."
    params = (
        *mode_params(0.8),
        FloatParam(
            "bootstrap_fraction",
            0.4,
            0.0,
            1.0,
            help="Fraction of the steps whose region inputs get a random noised background (official code: 20/50).",
        ),
        *mask_params(0.0)[1:],  # keep_background, feather
    )
    requires = (BOXES,)
    optional = (IMAGE, PROMPT, NEGATIVE_PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        if params["mode"] != EDIT:  # one CFG step a region (the boxes and the background) a step
            return 2.0 * (1 + TYPICAL_BOXES) * steps
        level = denoised(steps, params["inversion_strength"])  # invert; then the boxes only
        return level + 2.0 * TYPICAL_BOXES * level

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        # 1. check the inputs; the regions on the latent grid, the prompts per region
        backbone = ctx.backbone
        edit = edits_photo(params, inputs)
        boxes = check_layout_boxes(inputs.boxes)
        width, height = inputs.image.size if inputs.image is not None else (backbone.size, backbone.size)
        factor = backbone.vae_scale_factor
        masks = region_masks(boxes, (width, height), factor, backbone.device)
        prompts = [inputs.prompt.strip() or ", ".join(b.phrase for b in boxes), *(b.phrase.strip() for b in boxes)]
        embeds = [encode_prompt(backbone, prompt, inputs.negative_prompt) for prompt in prompts]
        steps = max(1, inputs.steps)

        # 2. the starting latent: noise (as diffusers draws it), or the photo inverted to the chosen level
        if edit:
            start = denoising_steps(steps, params["inversion_strength"])  # as the other layout methods count it
            inversion = invert_image(backbone, inputs.image, prompts[0], steps, stop_at=start)
            latents, trajectory = inversion.trajectory[start], inversion.trajectory
        else:
            start, trajectory = steps, None
            shape = (1, backbone.unet.config.in_channels, height // factor, width // factor)
            latents = randn_tensor(shape, generator=ctx.generator, device=backbone.device, dtype=torch.float32)
        scheduler, schedule = sampling_schedule(backbone, steps, start)
        if not edit:
            latents = latents * scheduler.init_noise_sigma
        boot_steps = round(params["bootstrap_fraction"] * len(schedule))
        backgrounds = self.backgrounds(ctx, (width, height), max(1, boot_steps)) if boot_steps else None
        # the official code noises the bootstrap backgrounds with the initial noise; an edit starts from the photo's
        # inverted latent, which is no noise, so it draws its own
        fixed_noise = latents.clone()
        if edit:
            fixed_noise = randn_tensor(latents.shape, generator=ctx.generator, device=backbone.device)

        # 3. one step per region on the whole latent, fused per pixel (the background follows the photo's path)
        for j, (index, t) in enumerate(schedule):
            value, count = torch.zeros_like(latents), torch.zeros_like(latents)
            for i, (mask, (cond, uncond)) in enumerate(zip(masks, embeds, strict=True)):
                if not bool(mask.any()):
                    continue
                if edit and i == 0:
                    value += trajectory[index - 1] * mask
                    count += mask
                    continue
                view = latents
                if i > 0 and j < boot_steps:
                    draw = {"generator": ctx.generator, "device": ctx.generator.device}
                    pick = int(torch.randint(len(backgrounds), (1,), **draw))
                    noised = scheduler.add_noise(backgrounds[pick : pick + 1], fixed_noise, t)
                    view = latents * mask + noised * (1 - mask)
                noise = predict_noise(backbone, view, t, cond, inputs.guidance, uncond)
                value += scheduler.step(noise, t, view).prev_sample * mask
                count += mask
            latents = torch.where(count > 0, value / count, value)
            ctx.report(j + 1, len(schedule))
        image = decode_latents(backbone, latents)

        # 4. edit mode: the photo outside the boxes, exactly
        info: dict[str, Any] = {"mode": EDIT if edit else GENERATE, "regions": len(boxes) + bool(masks[0].any())}
        info["bootstrapped steps"] = f"{boot_steps}/{len(schedule)}"
        if edit:
            image = finish(inputs, image, box_region(boxes, image.size), params)
        return MethodOutput(image, info, extras=[(draw_boxes(image, boxes), "regions")])

    @staticmethod
    @torch.no_grad()
    def backgrounds(ctx: RunContext, size: tuple[int, int], count: int) -> torch.Tensor:
        """``count`` latents of random constant-colour images (the official bootstrapping backgrounds)."""
        colours = torch.rand(count, 3, generator=ctx.generator, device=ctx.generator.device)
        latents = [
            encode_image(ctx.backbone, Image.new("RGB", size, tuple(int(255 * c) for c in colour.tolist())))
            for colour in colours
        ]
        return torch.cat(latents)
