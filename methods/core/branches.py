"""Two branches under attention control: the source and the target of an edit denoised together.

:func:`sample_branches` is guided DDIM for a source and a target branch started from the same inverted latent
(any kind of ``methods.core.inversion``), both branches (and both classifier-free-guidance halves) batched in
one UNet call per step with a controller of ``methods.core.attention`` installed; :func:`edit_photo` inverts a
photo and runs it; :func:`run_controller` is the whole edit call of Prompt-to-Prompt, Plug-and-Play and
MasaCtrl (the run's photo, prompts, steps and guidance; the edit, the source reconstruction and their report).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from methods.core.attention import BRANCHES, AttentionController, controlled
from methods.core.ddim import sampling_schedule
from methods.core.inversion import Inversion, invert
from methods.core.latents import decode_latents, encode_prompt
from methods.core.spec import EditInputs, MethodOutput, RunContext

if TYPE_CHECKING:
    from PIL import Image

    from methods.core.backbone import Backbone


StepHook = Callable[[int, torch.Tensor], torch.Tensor]  # (sampling step done, 0 = noisiest; [src, tgt]) -> latents


@torch.no_grad()
def sample_branches(
    backbone: Backbone,
    inversion: Inversion,
    target_embeds: torch.Tensor,
    controller: AttentionController,
    *,
    step_hook: StepHook | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Guided DDIM of the source and a target branch from the inversion's noisiest latent: latents [src, tgt].

    Follows methods.core.inversion's conventions: the step at trajectory index i uses the inversion's
    unconditional embedding for both branches (null-text: optimised per step; negative-prompt: the source
    prompt's), direct inversion's correction goes to the source branch only, and the guidance is the one
    the inversion was made for. One UNet call per step: ``[src_uncond, tgt_uncond, src_cond, tgt_cond]``
    (``[src, tgt]`` at guidance 1). ``step_hook(j, latents)`` runs after sampling step j.
    """
    unet, guidance = backbone.unet, inversion.guidance
    scheduler, steps = sampling_schedule(backbone, inversion.schedule_steps, inversion.levels)
    latents = inversion.trajectory[-1].float().expand(BRANCHES, *inversion.trajectory[-1].shape[1:]).clone()
    with controlled(unet, controller):
        for j, (index, t) in enumerate(steps):
            source_embeds, uncond = inversion.embeddings_at(index)
            context = torch.cat([source_embeds, target_embeds])
            batch = latents
            if guidance != 1.0:
                context = torch.cat([uncond.expand_as(source_embeds)] * BRANCHES + [context])
                batch = torch.cat([latents] * 2)
            noise = unet(batch.to(unet.dtype), t, encoder_hidden_states=context.to(unet.dtype)).sample.float()
            if guidance != 1.0:
                uncond_noise, cond_noise = noise.chunk(2)
                noise = uncond_noise + guidance * (cond_noise - uncond_noise)
            latents = scheduler.step(noise, t, latents).prev_sample
            correction = inversion.correction_at(index - 1)
            if correction is not None:  # direct inversion: the source branch stays on the pivot
                latents = torch.cat([latents[:1] + correction, latents[1:]])
            if step_hook is not None:
                latents = step_hook(j, latents)
            if on_step is not None:
                on_step(j + 1, len(steps))
    return latents


@dataclass(frozen=True)
class BranchEdit:
    """The result of :func:`edit_photo`: the source reconstruction, the edit, and the inversion used."""

    source: torch.Tensor  # (1, 4, h, w)
    target: torch.Tensor  # (1, 4, h, w)
    inversion: Inversion

    @property
    def reconstruction_error(self) -> float:
        """|source - photo latent| / |photo latent| (0 = the source branch rebuilt the photo exactly)."""
        photo = self.inversion.trajectory[0]
        return float((self.source - photo).norm() / photo.norm().clamp_min(1e-12))


def edit_photo(
    ctx: RunContext,
    image: Image.Image,
    source_prompt: str,
    target_prompt: str,
    num_steps: int,
    guidance: float,
    controller: AttentionController,
    *,
    inversion: str = "ddim",
    inversion_options: dict[str, Any] | None = None,
    step_hook: StepHook | None = None,
) -> BranchEdit:
    """Invert ``image`` with ``source_prompt`` (kind ``inversion``), then denoise source and target under control."""
    backbone = ctx.backbone
    inverting = {"total": num_steps}  # the inversion's own step total (null-text adds its inner iterations)

    def report_inversion(done: int, total: int) -> None:
        inverting["total"] = total
        ctx.report(done, total + num_steps)

    inverted = invert(
        backbone,
        image,
        source_prompt,
        num_steps,
        guidance,
        inversion,
        on_step=report_inversion,
        **(inversion_options or {}),
    )
    target_embeds, _ = encode_prompt(backbone, target_prompt)
    latents = sample_branches(
        backbone,
        inverted,
        target_embeds,
        controller,
        step_hook=step_hook,
        on_step=lambda i, n: ctx.report(inverting["total"] + i, inverting["total"] + n),
    )
    return BranchEdit(latents[:1], latents[1:], inverted)


def run_controller(
    ctx: RunContext,
    inputs: EditInputs,
    controller: AttentionController,
    inversion: str,
    *,
    inversion_options: dict[str, Any] | None = None,
    step_hook: StepHook | None = None,
    info: dict[str, Any] | None = None,
    extras: Callable[[BranchEdit, Image.Image], list[tuple[Image.Image, str]]] | None = None,
) -> MethodOutput:
    """Edit the run's photo from its source prompt into its target prompt under ``controller`` and report it:
    the decoded edit, with the inversion kind, the source reconstruction error and ``info``, and the source
    reconstruction followed by ``extras(edit, image)`` as extra cells."""
    edit = edit_photo(
        ctx,
        inputs.image,
        inputs.source_prompt,
        inputs.prompt,
        inputs.steps,
        inputs.guidance,
        controller,
        inversion=inversion,
        inversion_options=inversion_options,
        step_hook=step_hook,
    )
    image = decode_latents(ctx.backbone, edit.target)
    error = round(edit.reconstruction_error, 4)
    report = {"inversion": inversion, "source reconstruction error": error, **(info or {})}
    cells = [(decode_latents(ctx.backbone, edit.source), "source reconstruction (inversion, no edit)")]
    cells += extras(edit, image) if extras is not None else []
    return MethodOutput(image, info=report, extras=cells)
