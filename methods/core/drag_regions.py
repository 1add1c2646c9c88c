"""Shared machinery of the gradient-free drag methods (SDE-Drag, RegionDrag): checked drags and region pairs, the
default square region of a point drag, the latent cells a region covers and their mapping, the mask on the latent
grid, a picture of the moved regions, and the cycle-SDE of Nie et al. (ICLR 2024, https://arxiv.org/abs/2311.01410).

Cycle-SDE on the DDIM levels of ``sampling_schedule`` (conventions: ``methods.core.inversion``): the forward pass
noises x_{i-1} -> x_i = sqrt(a_i / a_{i-1}) x_{i-1} + sqrt(1 - a_i / a_{i-1}) n with fresh Gaussian n (no UNet), and
keeps the whole trajectory. The reverse DDPM step (eta = 1) from level i is x_{i-1} = m_i(x_i, eps) + sigma_i w_i
with the mean m_i(x, eps) = sqrt(a_{i-1}) x0(x, eps) + sqrt(1 - a_{i-1} - sigma_i^2) eps; the recorded noise is the
one that maps the recorded x_i onto the recorded x_{i-1}: w_i = (x_{i-1}^rec - m_i(x_i^rec, eps^rec)) / sigma_i. We
apply it as x_{i-1} = x_{i-1}^rec + m_i(x_i, eps) - m_i(x_i^rec, eps^rec), the same number without the division
(sigma_i is ~0 at the last step), so without an edit the reverse pass returns the recorded trajectory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image, ImageDraw

from methods.core import masks
from methods.core.ddim import sampling_schedule
from methods.core.images import mask_overlay
from methods.core.limits import MAX_DRAG_PAIRS, at_most, is_number
from methods.core.spec import Drag, InputError, RegionPair

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

POINT_REGION_MIN = 8  # px: the smallest half side of the square a point drag becomes
POINT_REGION_DIVISOR = 6  # half side = max(8, min(width, height) // 6), as the REGIONS slot's example


def validated_drags(drags: Sequence[Drag], size: tuple[int, int]) -> list[Drag]:
    """The drags if every point lies on the image and one of them moves; InputError otherwise."""
    if not drags:
        raise InputError("Add at least one drag: click a handle point, then the target it should move to.")
    at_most(drags, MAX_DRAG_PAIRS, "drag pairs", "Remove some handle → target pairs.")
    width, height = size
    drags = [Drag(_pixel(d.handle), _pixel(d.target)) for d in drags]
    for drag in drags:
        for x, y in (drag.handle, drag.target):
            if not (0 <= x < width and 0 <= y < height):
                raise InputError(f"Drag point ({x}, {y}) lies outside the {width}x{height} image; move it onto it.")
    if all(d.handle == d.target for d in drags):
        raise InputError("Every drag ends where it starts; place each target away from its handle.")
    return drags


def validated_regions(pairs: Sequence[RegionPair], size: tuple[int, int]) -> list[RegionPair]:
    """The region pairs if every box has area and lies on the image (sizes may differ); InputError otherwise."""
    at_most(pairs, MAX_DRAG_PAIRS, "region pairs", "Remove some handle → target regions.")
    width, height = size
    pairs = [RegionPair(_pixel(p.handle), _pixel(p.target)) for p in pairs]
    for pair in pairs:
        for what, (x0, y0, x1, y1) in (("handle", pair.handle), ("target", pair.target)):
            if x1 <= x0 or y1 <= y0:
                raise InputError(
                    f"The {what} region ({x0}, {y0}, {x1}, {y1}) has no area; drag out a box with a width and height."
                )
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise InputError(
                    f"The {what} region ({x0}, {y0}, {x1}, {y1}) reaches outside the {width}x{height} image; "
                    "keep it on the image."
                )
    if all(p.handle == p.target for p in pairs):
        raise InputError("Every target region is its handle region; move each target region somewhere else.")
    return pairs


def _pixel(values: Sequence[float]) -> tuple[int, ...]:
    """Coordinates as whole pixels (rounded); anything but finite numbers is an InputError."""
    if not all(is_number(v) and math.isfinite(v) for v in values):
        raise InputError("Drag points and regions need finite pixel coordinates; place them on the image again.")
    return tuple(int(round(v)) for v in values)


def regions_from_drags(drags: Sequence[Drag], size: tuple[int, int]) -> list[RegionPair]:
    """Each point drag as a region pair: the square of half side max(8, min(w, h) // 6) px around the handle onto
    the same square around the target, each clipped to the image (clipped squares may differ in size)."""
    width, height = size
    half = max(POINT_REGION_MIN, min(width, height) // POINT_REGION_DIVISOR)

    def square(x: int, y: int) -> tuple[int, int, int, int]:
        return max(0, x - half), max(0, y - half), min(width, x + half), min(height, y + half)

    return [RegionPair(square(*d.handle), square(*d.target)) for d in drags]


def box_cells(box: tuple[int, int, int, int], factor: int, grid: tuple[int, int]) -> tuple[int, int, int, int]:
    """The latent cells (r0, c0, r1, c1), end exclusive, that a pixel box touches (at least one cell)."""
    x0, y0, x1, y1 = box
    r0, c0 = min(y0 // factor, grid[0] - 1), min(x0 // factor, grid[1] - 1)
    return r0, c0, max(r0 + 1, min(grid[0], -(-y1 // factor))), max(c0 + 1, min(grid[1], -(-x1 // factor)))


def region_cells(pair: RegionPair, factor: int, grid: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Index grids (source rows, source cols, target rows, target cols), each of the target box's shape: target
    cell (r, c) takes the source cell at the same relative position (a nearest-neighbour resize), so
    ``latent[..., tr, tc] = source[..., sr, sc]`` maps the handle region onto the target region."""
    s0, s1, s2, s3 = box_cells(pair.handle, factor, grid)
    t0, t1, t2, t3 = box_cells(pair.target, factor, grid)

    def mapped(start: int, stop: int, into_start: int, into_stop: int) -> torch.Tensor:
        position = (torch.arange(into_start, into_stop) - into_start + 0.5) * (stop - start) / (into_stop - into_start)
        return (start + position.floor().long()).clamp(start, stop - 1)

    rows, cols = mapped(s0, s2, t0, t2), mapped(s1, s3, t1, t3)
    source_rows, source_cols = torch.meshgrid(rows, cols, indexing="ij")
    target_rows, target_cols = torch.meshgrid(torch.arange(t0, t2), torch.arange(t1, t3), indexing="ij")
    return source_rows, source_cols, target_rows, target_cols


def editable_cells(mask: Image.Image | None, grid: tuple[int, int], device: torch.device) -> torch.Tensor | None:
    """The mask on the latent grid, (1, 1, h, w), 1 = editable (a cell is editable if any pixel in it is); None when
    there is no mask or it covers everything. An empty mask is an InputError."""
    if mask is None:
        return None
    if not masks.as_bool(mask).any():
        raise InputError("The mask is empty: paint the region that may change, or clear the mask to edit everywhere.")
    cells = masks.covered_cells(mask, grid, device)
    return None if bool(cells.all()) else cells


def draw_regions(image: Image.Image, pairs: Sequence[RegionPair], mask: Image.Image | None = None) -> Image.Image:
    """Handle regions in red, target regions in blue, an arrow between their centres; the mask lightened."""
    out = mask_overlay(image, mask, (255, 255, 255)) if mask is not None else image.copy()
    draw = ImageDraw.Draw(out)
    width = max(1, out.width // 128)
    for pair in pairs:
        (hx0, hy0, hx1, hy1), (tx0, ty0, tx1, ty1) = pair.handle, pair.target
        draw.rectangle((hx0, hy0, hx1 - 1, hy1 - 1), outline=(255, 40, 40), width=width)
        draw.rectangle((tx0, ty0, tx1 - 1, ty1 - 1), outline=(40, 90, 255), width=width)
        draw.line(
            ((hx0 + hx1) / 2, (hy0 + hy1) / 2, (tx0 + tx1) / 2, (ty0 + ty1) / 2), fill=(255, 255, 255), width=width
        )
    return out


@dataclass(frozen=True)
class CycleSDE:
    """The cycle-SDE on levels 0..``levels`` of a ``num_steps`` DDIM schedule (see the module docstring).

    ``alphas[i]`` is a-bar at level i (level 0: the scheduler's final a-bar, the clean latent's), ``timesteps[i]``
    the UNet timestep of the step at index i (``timesteps[0]`` is unused)."""

    alphas: torch.Tensor
    timesteps: tuple[torch.Tensor, ...]

    @classmethod
    def on(cls, backbone: Backbone, num_steps: int, levels: int) -> CycleSDE:
        scheduler, steps = sampling_schedule(backbone, num_steps, levels)
        by_index = dict(steps)
        final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=torch.float64)
        alphas = [final] + [scheduler.alphas_cumprod[int(by_index[i])].double() for i in range(1, levels + 1)]
        timesteps = (torch.tensor(0),) + tuple(by_index[i] for i in range(1, levels + 1))
        return cls(torch.stack(alphas), timesteps)

    @property
    def levels(self) -> int:
        return len(self.alphas) - 1

    def forward(self, x0: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """The noising trajectory [x_0, x_1, ..., x_levels] (float32), each step with fresh noise from ``generator``."""
        trajectory = [x0.float()]
        for i in range(1, self.levels + 1):
            ratio = float(self.alphas[i] / self.alphas[i - 1])
            noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=torch.float32)
            trajectory.append(ratio**0.5 * trajectory[-1] + (1 - ratio) ** 0.5 * noise)
        return trajectory

    def mean(self, index: int, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """m_i(x, eps): the eta = 1 DDPM step's mean from level ``index`` to ``index - 1``."""
        a_t, a_prev = float(self.alphas[index]), float(self.alphas[index - 1])
        sigma_sq = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        return a_prev**0.5 * x0 + max(0.0, 1 - a_prev - sigma_sq) ** 0.5 * eps

    def step(
        self,
        index: int,
        x: torch.Tensor,
        eps: torch.Tensor,
        recorded: Sequence[torch.Tensor],
        recorded_eps: torch.Tensor,
    ) -> torch.Tensor:
        """x_{index-1} from x_index with the noise recorded between ``recorded[index]`` and ``recorded[index - 1]``
        (``recorded_eps`` = the UNet's eps on ``recorded[index]``)."""
        return recorded[index - 1] + self.mean(index, x, eps) - self.mean(index, recorded[index], recorded_eps)
