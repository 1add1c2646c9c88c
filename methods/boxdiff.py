"""BoxDiff: Text-to-Image Synthesis with Training-Free Box-Constrained Diffusion (Xie et al., ICCV 2023).

https://arxiv.org/abs/2307.10816 (official code: github.com/showlab/BoxDiff, built on Attend-and-Excite). At
each of the first 25 of 50 steps, run the UNet on z_t with the prompt, average the 16x16 cross-attention maps
(512 px: the down and up layers at 1/4 of the latent) over layers and heads, drop the start token, multiply by
100 and softmax over the text tokens, Gaussian-smooth each box token's map A (3x3, sigma 0.5), and lower
L = sum over boxes of three constraints: *inner-box* 1 - mean(top-k of A inside the box), *outer-box*
mean(top-k of A outside it) (k = P = 20 % of the cells of each region), and *corner* mean(|proj(A) - proj(M)|
x C) for the max-projections of A and of the box mask M on the x and y axes, weighted by C = 1 within L = 1
cell of the box's edges. Update z_t <- z_t - alpha_t grad L with alpha_t = 20 sqrt(s_t), s_t linear from 1 to
0.5 over the steps. At steps 0, 10 and 20 *iterative refinement* first repeats steps on the largest inner-box
loss alone (up to 20 times) until it is below 1 - 0.05, 1 - 0.5, 1 - 0.8. Then denoise with guidance 7.5.
Here: DDIM (the official pipeline keeps SD 1.4's PNDM scheduler); guided and refinement steps as fractions of the
sampled steps (0.5; 0, 0.2, 0.4; a refinement step is refined even past the guided ones, as officially); the box
token is the phrase's last word (the head noun; the official code takes one token index per box from the user), its
BPE pieces averaged; k is at least 1 (the official k = 0 for a tiny box gives NaN); after a refinement the regular
step uses a fresh forward (the official code reuses the maps from before it). Maps follow
``methods.core.box_attention.map_factor``: 1/4 of the latent, or 1/2 where 1/4 is under 8 cells (the tiny backbone
reads 8x8). *Edit photo* is our addition, shared with Layout guidance: DDIM inversion, latent blending and pixel
paste-back outside the boxes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from methods.core.attention import Site
from methods.core.box_attention import (
    EDIT,
    BoxGuide,
    BoxProblem,
    EnergyDescent,
    Maps,
    cell_box,
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

REFINE_AT = ((0.0, 0.05), (0.2, 0.5), (0.4, 0.8))  # (fraction of the steps, threshold): steps 0, 10, 20 of 50
SCALE_RANGE = (1.0, 0.5)  # the step size's sqrt factor runs linearly between these over the steps


def smoothed(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """(n, h, w) maps through a 3x3 Gaussian of ``sigma`` with reflect padding (the official smoothing)."""
    if sigma <= 0:
        return maps
    x = torch.arange(3, dtype=maps.dtype, device=maps.device) - 1
    kernel = torch.exp(-((x / (2 * sigma)) ** 2))  # the official GaussianSmoothing's exp(-((x - mean) / (2 std))^2)
    kernel = torch.outer(kernel, kernel) / kernel.sum() ** 2
    padded = F.pad(maps[:, None], (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel[None, None])[:, 0]


def token_maps(maps: Maps, guide: BoxGuide) -> torch.Tensor:
    """Each box's head-word map: maps averaged over layers and heads, start token dropped, x100 softmax over the
    other tokens (up to the last slot, as for SD 1.x), head tokens averaged, smoothed: (boxes, h, w)."""
    grid = maps[0].shape[1:3]
    mean = torch.cat([m for m in maps if m.shape[1:3] == grid]).mean(dim=0)  # (h, w, keys)
    text = (mean[..., 1:-1] * 100).softmax(dim=-1)
    heads = [text[..., [p - 1 for p in target.head]].mean(dim=-1) for target in guide.problem.targets]
    return smoothed(torch.stack(heads), guide.params["smoothing_sigma"])


def box_losses(maps: Maps, guide: BoxGuide) -> tuple[torch.Tensor, torch.Tensor]:
    """(inner-box losses per box, the total L = inner + outer + corner x and y, summed over the boxes)."""
    if not maps:
        return torch.zeros(1), torch.zeros(())
    attention = token_maps(maps, guide)
    masks = guide.problem.masks(tuple(attention.shape[1:]))
    share, width = guide.params["top_fraction"], guide.params["corner_width"]
    inner, total = [], torch.zeros((), device=attention.device)
    for a, mask, target in zip(attention, masks, guide.problem.targets, strict=True):
        h, w = mask.shape
        k_in = max(1, int(mask.sum() * share))
        inner.append((1 - (a * mask).flatten().topk(k_in).values.mean()).clamp(min=0))
        outside = 1 - mask
        if outside.sum() > 0:
            k_out = max(1, int(outside.sum() * share))
            total = total + (a * outside).flatten().topk(k_out).values.mean().clamp(min=0)
        x0, y0, x1, y1 = cell_box(target.box, (h, w), guide.rounding)
        for axis, (lo, hi, n) in ((0, (x0, x1, w)), (1, (y0, y1, h))):  # axis 0: onto x (max over rows)
            near = torch.zeros(n, device=a.device)
            for edge in (lo, hi):
                near[max(edge - width, 0) : min(edge + width + 1, n)] = 1.0
            projection, target_projection = a.max(dim=axis).values, mask.max(dim=axis).values
            total = total + ((projection - target_projection).abs() * near).mean()
    inner_losses = torch.stack(inner)
    return inner_losses, total + inner_losses.sum()


class BoxDiffGuide(BoxGuide):
    rounding = "round"  # the official round(x_px / (512 / res))
    head_only = True  # one token per box, as the official token_indices

    def __init__(self, params: dict[str, Any], problem: BoxProblem) -> None:
        super().__init__(params, problem)
        self.refinements = 0

    @property
    def active(self) -> bool:
        return self.params["step_size"] > 0

    def reads(self, site: Site, factor: int, grid: tuple[int, int], want: int) -> bool:
        return factor == want  # down, mid and up layers at the map resolution (the official from_where)

    def energy(self, maps: Maps) -> torch.Tensor:
        return box_losses(maps, self)[1]

    def inner_max(self, maps: Maps) -> torch.Tensor:
        return box_losses(maps, self)[0].max()

    def inside(self, maps: Maps) -> list[float]:
        """The share of each box token's map (the x100 softmax, smoothed: what the constraints see) in its box."""
        if not maps:
            return [0.0] * len(self.problem.targets)
        with torch.no_grad():
            attention = token_maps(maps, self)
            masks = self.problem.masks(tuple(attention.shape[1:]))
            return ((attention * masks).sum((1, 2)) / attention.sum((1, 2))).tolist()

    def guide(self, j: int, count: int, t: torch.Tensor, descent: EnergyDescent) -> bool:
        first, last = SCALE_RANGE
        scale = first + (last - first) * j / max(1, count - 1)  # np.linspace(1.0, 0.5, count)[j]
        step = self.params["step_size"] * math.sqrt(scale)
        thresholds: dict[int, float] = {}
        for fraction, threshold in REFINE_AT:  # on short schedules several fall on one step: the first one counts
            thresholds.setdefault(round(fraction * count), threshold)
        refined = False
        if j in thresholds:
            for _ in range(self.params["refinement_iterations"]):
                _, stepped = descent.descend(t, self.inner_max, step, stop_below=1 - thresholds[j])
                if not stepped:
                    break
                self.refinements += 1
                refined = True
        if j < guided_steps(self.params["guided_fraction"], count):
            descent.descend(t, self.energy, step)
            return True
        return refined

    def report(self) -> dict[str, Any]:
        return {"refinement iterations": self.refinements}


@register
class BoxDiff(Method):
    name = "boxdiff"
    label = "BoxDiff"
    condition = Condition.LAYOUT
    strategy = Strategy.TRAINING_FREE
    paper = Paper(
        "BoxDiff: Text-to-Image Synthesis with Training-Free Box-Constrained Diffusion",
        2023,
        "https://arxiv.org/abs/2307.10816",
    )
    summary = "Inner-box, outer-box and corner constraints on the phrases' cross-attention steer the noisy latent."
    params = (
        *mode_params(),
        FloatParam(
            "step_size",
            20.0,
            0.0,
            100.0,
            step=1.0,
            help="alpha: the gradient step on z_t, times sqrt of 1 -> 0.5 over the steps (official scale_factor "
            "20; 0 = the plain sampler).",
        ),
        FloatParam(
            "guided_fraction", 0.5, 0.0, 1.0, help="Fraction of the sampled steps that are guided (official: 25/50)."
        ),
        FloatParam(
            "top_fraction",
            0.2,
            0.05,
            1.0,
            help="P: share of the cells inside / outside a box whose top-k attention counts (official: 0.2).",
        ),
        IntParam("corner_width", 1, 0, 4, help="L: cells around each box edge the corner constraint weighs (1)."),
        IntParam(
            "refinement_iterations",
            20,
            0,
            50,
            help="Iterative refinement at 0, 20 and 40 % of the steps: at most this many steps on the inner-box "
            "loss (official: 20; 0 = off, as the official README's --refine False).",
        ),
        FloatParam(
            "smoothing_sigma",
            0.5,
            0.0,
            2.0,
            help="Gaussian smoothing of the maps before the constraints (official: 3x3, sigma 0.5; 0 = off).",
        ),
    )
    requires = (BOXES,)
    optional = (IMAGE, PROMPT, NEGATIVE_PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        level = denoised(steps, params["inversion_strength"]) if params["mode"] == EDIT else steps
        refined = len({round(f * level) for f, _ in REFINE_AT}) * params["refinement_iterations"]
        updates = guided_steps(params["guided_fraction"], level) + refined  # forward + backward each
        return (level if params["mode"] == EDIT else 0) + 2.0 * level + GRADIENT_STEP * updates

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        return run_box_guidance(ctx, inputs, params, BoxDiffGuide)
