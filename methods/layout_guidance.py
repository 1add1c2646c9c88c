"""Training-Free Layout Control with Cross-Attention Guidance (Chen, Laina, Vedaldi, WACV 2024).

https://arxiv.org/abs/2304.03373 (official code: github.com/silent-chen/layout-guidance) — *backward guidance*:
at each of the first denoising steps (10 of 51 LMS steps in the official code) and for up to 5 iterations per
step, run the UNet on z_t with the prompt, read the cross-attention maps A of each phrase token (mid block and
first cross-attention up block: 8x8 and 16x16 at 512 px), and compute the energy
E = mean over maps, boxes and the box's tokens of mean over heads of (1 - sum_{in box} A / sum A)^2.
Then z_t <- z_t - eta * sigma_t^2 * grad E (eta = the official ``loss_scale`` 30, sigma_t the LMS noise level),
until E <= 0.2; then denoise the step normally with classifier-free guidance 7.5.
Here: DDIM instead of LMS. The official step in LMS's variance-exploding latent x / sqrt(abar_t) is, in DDIM's
latent, exactly z_t <- z_t - eta * (1 - abar_t) * grad_{z_t} E (sigma_t^2 = (1 - abar_t) / abar_t), so the same
eta = 30 applies. Guidance covers the first ``guided_fraction`` (10/51 ~ 0.2) of the sampled steps; the
threshold is checked on a fresh measurement at each step (the official loop reuses the last step's loss). Maps
follow ``methods.core.box_attention.map_factor``: the first up block at 1/4 of the latent (1/2 where 1/4 is
under 8 cells, as on the tiny backbone), the mid block only where its maps are at least 8 cells wide (skipped on
the tiny backbone's 2x2). A phrase's tokens are its words found in the prompt, articles dropped (the official
``Pharse2idx`` takes every word's first occurrence); a phrase missing from the prompt is appended to it.
*Edit photo* is our addition (the paper edits real images with DreamBooth + textual inversion, not done here):
DDIM-invert the photo, guide while denoising, blend the inversion latents back outside the boxes after every
step and paste the photo back outside them in pixels (``run_box_guidance``).
"""

from __future__ import annotations

from typing import Any

import torch

from methods.core.attention import Site
from methods.core.box_attention import (
    EDIT,
    MIN_SIDE,
    BoxGuide,
    EnergyDescent,
    Maps,
    guided_steps,
    mode_params,
    run_box_guidance,
)
from methods.core.costs import GRADIENT_STEP, denoised
from methods.core.registry import register
from methods.core.slots import BOXES, IMAGE, NEGATIVE_PROMPT, PROMPT
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


def layout_energy(maps: Maps, guide: BoxGuide) -> torch.Tensor:
    """The paper's energy over the recorded maps: per map, box and token, the mean over heads of
    (1 - in-box share)^2, averaged over the box's tokens, summed, divided by (boxes x maps)."""
    targets = guide.problem.targets
    if not maps:
        return torch.zeros(())
    total = torch.zeros((), device=maps[0].device)
    for probs in maps:
        masks = guide.problem.masks(tuple(probs.shape[1:3]))
        for i, target in enumerate(targets):
            a = probs[..., target.tokens]  # (heads, h, w, tokens)
            share = (a * masks[i][..., None]).sum((1, 2)) / a.sum((1, 2))  # (heads, tokens)
            total = total + ((1 - share) ** 2).mean(dim=0).mean()
    return total / (len(targets) * len(maps))


class LayoutGuide(BoxGuide):
    rounding = "floor"  # the official int(x * W)

    @property
    def active(self) -> bool:
        return self.params["guidance_strength"] > 0 and self.params["iterations"] > 0

    def reads(self, site: Site, factor: int, grid: tuple[int, int], want: int) -> bool:
        if site.place == "mid":
            return min(grid) >= MIN_SIDE
        return site.place == "up" and factor == want

    def energy(self, maps: Maps) -> torch.Tensor:
        return layout_energy(maps, self)

    def guide(self, j: int, count: int, t: torch.Tensor, descent: EnergyDescent) -> bool:
        if j >= guided_steps(self.params["guided_fraction"], count):
            return False
        step = self.params["guidance_strength"] * (1 - descent.alpha_bar(t))
        for _ in range(self.params["iterations"]):
            _, stepped = descent.descend(t, self.energy, step, stop_below=self.params["energy_threshold"])
            if not stepped:
                break
        return True


@register
class LayoutGuidance(Method):
    name = "layout_guidance"
    label = "Layout guidance"
    condition = Condition.LAYOUT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "Training-Free Layout Control with Cross-Attention Guidance", 2024, "https://arxiv.org/abs/2304.03373"
    )
    summary = "Gradient steps on the noisy latent pull each phrase's cross-attention into its box (backward guidance)."
    params = (
        *mode_params(),
        FloatParam(
            "guidance_strength",
            30.0,
            0.0,
            200.0,
            step=1.0,
            help="eta: the energy's gradient step, times (1 - abar_t) (the official loss_scale 30 with LMS's "
            "sigma_t^2; 0 = the plain sampler).",
        ),
        FloatParam(
            "guided_fraction",
            0.2,
            0.0,
            1.0,
            help="Fraction of the sampled steps that are guided, the first ones (official: 10 of 51).",
        ),
        IntParam("iterations", 5, 0, 20, help="Gradient steps per guided denoising step at most (official: 5)."),
        FloatParam(
            "energy_threshold",
            0.2,
            0.0,
            1.0,
            step=0.01,
            help="A step's iterations stop once the energy is at most this (official: 0.2).",
        ),
    )
    requires = (BOXES,)
    optional = (IMAGE, PROMPT, NEGATIVE_PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        level = denoised(steps, params["inversion_strength"]) if params["mode"] == EDIT else steps
        guided = guided_steps(params["guided_fraction"], level) * params["iterations"]  # forward + backward
        return (level if params["mode"] == EDIT else 0) + 2.0 * level + GRADIENT_STEP * guided

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        return run_box_guidance(ctx, inputs, params, LayoutGuide)
