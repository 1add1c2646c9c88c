"""Inverting a real photo on the shared backbone, shared by every method that edits one.

Deterministic DDIM (Song et al., 2021) run backwards maps a clean latent x_0 to a noise latent x_T; run
forwards from there with the same prompt and guidance 1 it regenerates x_0 up to the discretisation error.
With classifier-free guidance w > 1 at sampling, which text-guided editing needs, the regeneration drifts
away from the photo. :func:`invert` offers the remedies, selected by ``kind`` (see ``INVERSION_KINDS``):

* ``"ddim"``: plain DDIM inversion at guidance 1 (the pivot of the others); sampling uses the empty-prompt
  embedding as the unconditional one.
* ``"null-text"``: Null-text Inversion (Mokady et al., CVPR 2023, https://arxiv.org/abs/2211.09794). From
  z_T = x_T, for each sampling step optimise the unconditional embedding (Adam, at most ``inner_steps``
  iterations, learning rate ``learning_rate * (1 - j / (2 T))`` at sampling step j, the paper's 1e-2 *
  (1 - i/100) for T = 50) so that the guided DDIM step from z_t lands on the pivot x_{t-1}; stop early once
  the MSE is below ``epsilon + 2e-5 * j * 50 / T`` (the paper's epsilon + i * 2e-5, as a fraction of the
  trajectory), keep the embedding, take the step, go on. The optimisation runs in float32 on a float32 copy
  of the embedding; the UNet is only differentiated through (with a loss scale when it is float16), never
  given ``requires_grad``. Per-step iterations and initial / final losses land in ``Inversion.report``.
* ``"negative-prompt"``: Negative-Prompt Inversion (Miyake et al., 2023, https://arxiv.org/abs/2305.16807):
  no optimisation; the source prompt's embedding replaces the unconditional one during guided sampling, so
  the source branch reproduces the guidance-1 regeneration at any guidance. Costs one DDIM inversion.
* ``"direct"``: Direct Inversion (PnP Inversion, Ju et al., ICLR 2024, https://arxiv.org/abs/2310.01506):
  store, per step, the difference between the pivot x_{t-1} and the guided DDIM step taken from x_t, and
  add it back to the *source* branch after that step, so the source branch follows the pivot exactly.

Conventions (the editing methods code against these):

* Trajectory: ``trajectory[i]`` is the latent after ``i`` inversion steps; ``trajectory[0]`` is the encoded
  image, ``trajectory[-1]`` (index ``levels``) the most noisy one. Always the guidance-1 DDIM pivot.
* A sampling step is named by the trajectory index it *starts* from: the step "at index i" (1 <= i <= T)
  goes from level i to level i - 1. ``sampling_schedule(backbone, num_steps, start_index)`` returns a fresh
  DDIM scheduler and the (index, timestep) pairs, noisiest first: [(T, t_T), ..., (1, t_1)].
* Embeddings for the step at index i: ``inversion.embeddings_at(i, prompt_embeds)`` gives (conditional,
  unconditional). The conditional one is ``prompt_embeds`` (the source prompt's if None, for the source
  branch; the target prompt's for an edited branch). The unconditional one, the same for every branch:
  ddim / direct: the empty prompt's; null-text: ``null_embeds[i - 1]`` (one (1, 77, d) float32 tensor per
  step, stored by index, so ``null_embeds[0]`` is used by the last, least noisy step); negative-prompt:
  the source prompt's. A batched editor (e.g. ``[source, target]``) repeats the unconditional one per row.
* Direct inversion: after the step at index i, add ``inversion.correction_at(i - 1)`` (= ``corrections[i -
  1]``) to the source branch only; equivalently set the source branch to ``trajectory[i - 1]``. Other kinds
  return None there.
* ``sample(backbone, inversion, prompt_embeds=None, guidance=None)`` runs this loop for one branch:
  without ``prompt_embeds`` it reconstructs the photo's latent at the inversion's guidance.

Caching: several methods on the same photo invert it once. Entries live in a small per-backbone LRU cache
(:func:`inversion_cache`) keyed by (kind, image bytes, prompt, steps, guidance, kind options, the UNet's
attention processors), so different kinds never collide; hits and misses are counted per kind. The DDIM
pivot is itself the ``"ddim"`` entry (also what :func:`invert_image` returns), so a null-text inversion
after a DDIM one reuses its trajectory. For ``"ddim"`` and ``"negative-prompt"`` the result does not depend
on the sampling guidance, so their key holds the inversion guidance (1.0) and the returned object carries
the requested one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from methods.core.ddim import Progress, StepHook, ddim_invert, sampling_schedule
from methods.core.inversion_cache import image_digest, inversion_cache, processors_key
from methods.core.latents import encode_image, encode_prompt, predict_noise
from methods.core.null_text import NullTextOptions, null_text_optimise

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

logger = logging.getLogger(__name__)


INVERSION_KINDS = ("ddim", "null-text", "negative-prompt", "direct")
INVERSION_HELP = (
    "How the photo is inverted: ddim (plain, drifts under guidance), null-text (optimises the unconditional "
    "embedding per step; slow, faithful), negative-prompt (source prompt as the negative one; as fast as "
    "ddim), direct (adds back the per-step drift to the source branch; exact source reconstruction)."
)
_GUIDED_KINDS = ("null-text", "direct")  # kinds whose result depends on the sampling guidance
_OPTIONS: dict[str, type] = {"null-text": NullTextOptions}


@dataclass(frozen=True)
class Inversion:
    """An inverted photo and what sampling needs to regenerate or edit it (conventions: module docstring)."""

    trajectory: tuple[torch.Tensor, ...]  # [x_0 (the photo), x_1, ..., x_levels], the guidance-1 DDIM pivot
    prompt_embeds: torch.Tensor  # the source prompt's
    negative_embeds: torch.Tensor  # the empty prompt's
    kind: str = "ddim"
    guidance: float = 1.0  # the guidance sampling is meant to use
    num_steps: int = 0  # the DDIM schedule's step count (0: len(trajectory) - 1)
    null_embeds: tuple[torch.Tensor, ...] = ()  # null-text: null_embeds[i - 1] for the step at index i
    corrections: tuple[torch.Tensor, ...] = ()  # direct: corrections[i - 1] added after the step at index i
    report: dict[str, Any] = field(default_factory=dict, compare=False)  # seconds, iterations, losses

    @property
    def levels(self) -> int:
        """The trajectory's last index (its most noisy latent)."""
        return len(self.trajectory) - 1

    @property
    def schedule_steps(self) -> int:
        return self.num_steps or self.levels

    def uncond_at(self, index: int) -> torch.Tensor:
        """The unconditional embedding for the sampling step at ``index`` (level index -> index - 1)."""
        if self.kind == "null-text" and self.null_embeds:
            return self.null_embeds[index - 1]
        if self.kind == "negative-prompt":
            return self.prompt_embeds
        return self.negative_embeds

    def embeddings_at(self, index: int, prompt_embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, unconditional) for the step at ``index``; conditional = the source prompt's if None."""
        return (self.prompt_embeds if prompt_embeds is None else prompt_embeds), self.uncond_at(index)

    def correction_at(self, index: int) -> torch.Tensor | None:
        """Direct inversion: what to add to the source branch once it reached level ``index`` (else None)."""
        return self.corrections[index] if self.corrections else None


def invert_image(
    backbone: Backbone,
    image: Image.Image,
    prompt: str,
    num_steps: int,
    guidance: float = 1.0,
    stop_at: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Inversion:
    """Encode, embed and DDIM-invert ``image`` once; later calls with the same inputs reuse the result.

    The returned trajectory has ``stop_at + 1`` latents (``num_steps + 1`` without ``stop_at``); it is shared
    with other callers, so never modify its tensors in place. ``guidance`` is the inversion's own guidance
    (1 for the usual pivot); :func:`invert` is the entry point for guided editing.
    """
    stop = num_steps if stop_at is None else max(0, min(int(stop_at), num_steps))
    key = ("ddim", image_digest(image), prompt, int(num_steps), float(guidance), processors_key(backbone))
    cache = inversion_cache(backbone)
    entry = cache.get(key, stop + 1)
    if entry is None:
        started = time.perf_counter()
        cond, uncond = encode_prompt(backbone, prompt)
        latents = encode_image(backbone, image)
        trajectory = ddim_invert(
            backbone, latents, cond, num_steps, guidance, stop, negative_embeds=uncond, on_step=on_step
        )
        report = {"seconds": round(time.perf_counter() - started, 4)}
        entry = Inversion(tuple(trajectory), cond, uncond, "ddim", float(guidance), int(num_steps), report=report)
        cache.put(key, entry)
    elif on_step is not None:
        on_step(stop, stop)
    return dataclasses.replace(entry, trajectory=entry.trajectory[: stop + 1])


def kind_options(kind: str, options: dict[str, Any]) -> Any:
    """The options object of ``kind`` from keyword options; options of other kinds are ignored, unknown
    names raise (so a method can pass all its inversion settings whatever kind the user picked)."""
    if kind not in INVERSION_KINDS:
        raise ValueError(f"unknown inversion kind {kind!r}; known: {', '.join(INVERSION_KINDS)}")
    known = {f.name for cls in _OPTIONS.values() for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown inversion options {unknown}; known: {sorted(known)}")
    cls = _OPTIONS.get(kind)
    if cls is None:
        return None
    return cls(**{f.name: options[f.name] for f in dataclasses.fields(cls) if f.name in options})


def invert(
    backbone: Backbone,
    image: Image.Image,
    prompt: str,
    num_steps: int,
    guidance: float = 7.5,
    kind: str = "ddim",
    *,
    on_step: Progress | None = None,
    **options: Any,
) -> Inversion:
    """Invert ``image`` described by ``prompt`` for sampling with ``num_steps`` DDIM steps at ``guidance``.

    ``kind`` is one of ``INVERSION_KINDS``; ``options`` are the kind's settings (null-text:
    :class:`NullTextOptions` fields). Cached per (kind, image, prompt, steps, guidance, options); the result
    is shared with other callers, so never modify its tensors in place. ``on_step(done, total)`` reports
    progress (total: the pivot's steps plus, for null-text, steps x inner_steps at most). ``report`` holds
    ``pivot_seconds`` (what the DDIM pivot took when it was computed) and ``seconds`` (the kind's own work).
    """
    opts = kind_options(kind, options)
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    guidance = float(guidance)
    key_guidance = guidance if kind in _GUIDED_KINDS else 1.0
    inner = opts.inner_steps if isinstance(opts, NullTextOptions) and guidance != 1.0 else 0
    total = num_steps * (1 + inner)

    pivot_progress = None if on_step is None else (lambda done, _: on_step(done, total))
    if kind == "ddim":
        pivot = invert_image(backbone, image, prompt, num_steps, 1.0, on_step=pivot_progress)
        return dataclasses.replace(pivot, guidance=guidance)
    key = (
        kind,
        image_digest(image),
        prompt,
        int(num_steps),
        key_guidance,
        dataclasses.astuple(opts) if opts is not None else (),
        processors_key(backbone),
    )
    cache = inversion_cache(backbone)
    entry = cache.get(key, num_steps + 1)
    if entry is not None:
        if on_step is not None:
            on_step(total, total)
        return dataclasses.replace(entry, guidance=guidance)

    pivot = invert_image(backbone, image, prompt, num_steps, 1.0, on_step=pivot_progress)
    started = time.perf_counter()
    base = dataclasses.replace(
        pivot, kind=kind, guidance=guidance, report={"pivot_seconds": pivot.report.get("seconds")}
    )
    if kind == "negative-prompt":
        entry = base
    elif kind == "direct":
        corrections = direct_corrections(
            backbone, pivot.trajectory, pivot.prompt_embeds, pivot.negative_embeds, num_steps, guidance
        )
        entry = dataclasses.replace(base, corrections=corrections)
    else:
        progress = None if on_step is None else (lambda done, _: on_step(num_steps + done, total))
        null_embeds, report = null_text_optimise(
            backbone, pivot.trajectory, pivot.prompt_embeds, pivot.negative_embeds, num_steps, guidance, opts, progress
        )
        entry = dataclasses.replace(base, null_embeds=null_embeds, report={**base.report, **report})
    entry.report["seconds"] = round(time.perf_counter() - started, 4)
    cache.put(key, entry)
    if on_step is not None:
        on_step(total, total)
    return entry


@torch.no_grad()
def direct_corrections(
    backbone: Backbone,
    trajectory: tuple[torch.Tensor, ...],
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor,
    num_steps: int,
    guidance: float,
) -> tuple[torch.Tensor, ...]:
    """Direct inversion: ``corrections[i - 1] = trajectory[i - 1] - guided DDIM step from trajectory[i]``."""
    scheduler, steps = sampling_schedule(backbone, num_steps, len(trajectory) - 1)
    corrections: list[torch.Tensor] = [torch.zeros(0)] * (len(trajectory) - 1)
    for index, t in steps:
        noise = predict_noise(backbone, trajectory[index], t, prompt_embeds, guidance, negative_embeds)
        corrections[index - 1] = trajectory[index - 1] - scheduler.step(noise, t, trajectory[index]).prev_sample
    return tuple(corrections)


# -- sampling from an inversion -----------------------------------------------------------------------
@torch.no_grad()
def sample(
    backbone: Backbone,
    inversion: Inversion,
    prompt_embeds: torch.Tensor | None = None,
    guidance: float | None = None,
    start_index: int | None = None,
    *,
    correct: bool | None = None,
    step_hook: StepHook | None = None,
    on_step: Progress | None = None,
) -> torch.Tensor:
    """One branch of guided DDIM sampling from ``inversion.trajectory[start_index]`` down to a clean latent.

    Without ``prompt_embeds`` this is the source branch: it reconstructs the photo's latent (applying direct
    inversion's corrections unless ``correct=False``). With a target prompt's embeddings it is a plain
    prompt-swap edit using the kind's unconditional embeddings (corrections off unless ``correct=True``).
    ``guidance`` defaults to the inversion's; ``step_hook`` as in :func:`ddim_sample`.
    """
    source = prompt_embeds is None
    guidance = inversion.guidance if guidance is None else float(guidance)
    if inversion.kind in _GUIDED_KINDS and guidance != inversion.guidance:
        logger.warning(
            "sampling a %s inversion made for guidance %s at %s", inversion.kind, inversion.guidance, guidance
        )
    correct = source if correct is None else correct
    scheduler, steps = sampling_schedule(
        backbone, inversion.schedule_steps, inversion.levels if start_index is None else start_index
    )
    latents = inversion.trajectory[steps[0][0] if steps else 0].float()
    for j, (index, t) in enumerate(steps):
        cond, uncond = inversion.embeddings_at(index, prompt_embeds)
        noise = predict_noise(backbone, latents, t, cond, guidance, uncond)
        latents = scheduler.step(noise, t, latents).prev_sample
        correction = inversion.correction_at(index - 1) if correct else None
        if correction is not None:
            latents = latents + correction
        if step_hook is not None:
            latents = step_hook(index - 1, latents)
        if on_step is not None:
            on_step(j + 1, len(steps))
    return latents


def reconstruct(backbone: Backbone, inversion: Inversion, guidance: float | None = None) -> torch.Tensor:
    """The source branch regenerated from the inversion's noisiest latent (the photo's latent if faithful)."""
    return sample(backbone, inversion, guidance=guidance)
