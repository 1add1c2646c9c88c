"""DragonDiffusion's building blocks (Mou et al., ICLR 2024): the decoder-feature tap, the drag regions on the
feature grid, the drag energy (edit, contrast and content terms) and the memory bank of decoder self-attention
keys / values. Positions are (row, col); the feature grid is twice the latent grid (image / 4 on SD), as in the
official code (``up_scale = 2`` over the output of up-block 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from methods.core.attention import AttentionController, Site, attend, steps_until
from methods.core.drag import DecoderFeatures

FEATURE_BLOCKS = (1, 2)  # UNet up-blocks whose outputs the energy compares (the official ``up_ft_index``)


class FeatureTap:
    """Forward hooks on the decoder blocks of ``FEATURE_BLOCKS``; ``read()`` resizes their last outputs to the
    feature grid (nearest, as the official ``F.interpolate``) in float32. ``remove()`` takes the hooks off."""

    def __init__(self, unet: Any, grid: tuple[int, int]) -> None:
        blocks = [unet.up_blocks[i] for i in FEATURE_BLOCKS if i < len(unet.up_blocks)] or [unet.up_blocks[-1]]
        self.hooks = [DecoderFeatures(block) for block in blocks]
        self.grid = grid

    def read(self) -> list[torch.Tensor]:
        return [F.interpolate(hook.value.float(), size=self.grid, mode="nearest") for hook in self.hooks]

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


@dataclass(frozen=True)
class DragRegions:
    """Square patches (side ``size``) at each handle and target on the feature ``grid`` (top-left corners);
    ``outside`` (grid, bool): the cells of the content term; ``area`` (1, 1, h, w) on the latent grid: 1 where the
    edit gradient applies (the edit area), 0 where the content gradient does."""

    handles: tuple[tuple[int, int], ...]
    targets: tuple[tuple[int, int], ...]
    size: int
    grid: tuple[int, int]
    outside: torch.Tensor
    area: torch.Tensor

    def patch(self, features: torch.Tensor, corner: tuple[int, int]) -> torch.Tensor:
        """(C, size * size) feature vectors of the patch at ``corner`` (raster order, so patches correspond)."""
        row, col = corner
        return features[0, :, row : row + self.size, col : col + self.size].flatten(1)

    def vacated(self, k: int) -> torch.Tensor:
        """Grid cells of handle patch ``k`` that its target patch does not cover (the contrast term's cells)."""
        cells = torch.zeros(self.grid, dtype=torch.bool, device=self.outside.device)
        (hr, hc), (tr, tc), n = self.handles[k], self.targets[k], self.size
        cells[hr : hr + n, hc : hc + n] = True
        cells[tr : tr + n, tc : tc + n] = False
        return cells


def drag_regions(
    handles_px: torch.Tensor,
    targets_px: torch.Tensor,
    mask: Image.Image | None,
    image_size: tuple[int, int],
    latent_size: tuple[int, int],
    radius: int,
    device: torch.device | str = "cpu",
) -> DragRegions:
    """Patches of radius ``radius`` around the drag points ((row, col) pixels of an image of ``image_size``
    (height, width)) on the feature grid, centres kept ``radius`` cells inside it (the official clip); the edit
    area is ``mask`` (pixels > 127) or, without one, the box spanning each handle and target patch widened by
    one patch side (a "drag corridor")."""
    grid = (2 * latent_size[0], 2 * latent_size[1])
    size = 2 * radius + 1
    scale = torch.tensor([grid[0] / image_size[0], grid[1] / image_size[1]])
    high = torch.tensor(grid) - 1 - radius

    def corners(points: torch.Tensor) -> tuple[tuple[int, int], ...]:
        cells = (points * scale).floor().clamp(min=torch.tensor([radius, radius]), max=high) - radius
        return tuple((int(r), int(c)) for r, c in cells.tolist())

    handles, targets = corners(handles_px), corners(targets_px)
    if mask is not None:
        pixels = torch.from_numpy(np.asarray(mask.convert("L")) > 127).float()
        area = F.adaptive_max_pool2d(pixels[None, None], grid)[0, 0] > 0
    else:
        area = torch.zeros(grid, dtype=torch.bool)
        for (hr, hc), (tr, tc) in zip(handles, targets, strict=True):
            r0, c0 = max(0, min(hr, tr) - size), max(0, min(hc, tc) - size)
            area[r0 : max(hr, tr) + 2 * size, c0 : max(hc, tc) + 2 * size] = True
    latent_area = F.adaptive_max_pool2d(area.float()[None, None], latent_size)
    return DragRegions(handles, targets, size, grid, (~area).to(device), latent_area.to(device))


def paste_start(z_t: torch.Tensor, regions: DragRegions) -> torch.Tensor:
    """The official start: each target's latent cells take the handle's (feature grid = 2 x latent grid)."""
    source, r = z_t.float(), regions.size // 2
    z_t, (height, width) = source.clone(), source.shape[-2:]  # copy from the source: patches may overlap

    def cells(corner: tuple[int, int]) -> tuple[slice, slice]:
        row, col = (min(max((c + r) // 2, r), n - 1 - r) - r for c, n in zip(corner, (height, width), strict=True))
        return slice(row, row + 2 * r + 1), slice(col, col + 2 * r + 1)

    for handle, target in zip(regions.handles, regions.targets, strict=True):
        z_t[(..., *cells(target))] = source[(..., *cells(handle))]
    return z_t


def _similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean of (cos + 1) / 2 over corresponding columns of two (C, N) feature matrices."""
    return ((F.cosine_similarity(a, b, dim=0) + 1) / 2).mean()


def drag_energy(
    current: list[torch.Tensor], guide: list[torch.Tensor], regions: DragRegions, weights: tuple[float, float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official drag-mode energy, averaged over layers (and drag pairs): (edit + contrast, content).

    edit: w_e / (1 + 4 s), s the similarity of the current features at each target patch to the guidance
    features at its handle patch; contrast: w_c * s over the vacated handle cells (current vs guidance, pushing
    the old place away from its old content); content: w_o / (1 + 4 s) over the cells outside the edit area."""
    w_edit, w_contrast, w_content = weights
    edit = current[0].new_zeros(())
    content = current[0].new_zeros(())
    pairs = len(regions.handles)
    for cur, ref in zip(current, guide, strict=True):
        for k in range(pairs):
            sim = _similarity(regions.patch(cur, regions.targets[k]), regions.patch(ref, regions.handles[k]))
            edit = edit + w_edit / (1 + 4 * sim)
            vacated = regions.vacated(k)
            if w_contrast and bool(vacated.any()):
                edit = edit + w_contrast * _similarity(cur[0][:, vacated], ref[0][:, vacated])
        if w_content and bool(regions.outside.any()):
            content = content + w_content / (
                1 + 4 * _similarity(cur[0][:, regions.outside], ref[0][:, regions.outside])
            )
    return edit / len(current) / pairs, content / len(current)


def target_similarity(current: list[torch.Tensor], guide: list[torch.Tensor], regions: DragRegions) -> float:
    """The edit term's s, averaged over layers and pairs: how much each target now looks like its handle did."""
    sims = [
        _similarity(regions.patch(cur, t), regions.patch(ref, h))
        for cur, ref in zip(current, guide, strict=True)
        for h, t in zip(regions.handles, regions.targets, strict=True)
    ]
    return float(torch.stack(sims).mean())


class MemoryBank(AttentionController):
    """Visual cross-attention to the inversion: in ``record`` mode each decoder self-attention keeps its keys /
    values; in ``inject`` mode the edited branch attends to [its own keys / values, the recorded ones] (the
    official drag mode concatenates along the tokens); ``off`` and every other layer attend as usual."""

    def __init__(self) -> None:
        super().__init__(0)
        self.mode = "off"
        self.bank: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        if self.mode == "off" or site.is_cross or site.place != "up":
            return attend(q, k, v, site.scale)
        if self.mode == "record":
            self.bank[site.name] = (k.detach(), v.detach())
            return attend(q, k, v, site.scale)
        k_ref, v_ref = (x.expand(k.shape[0], -1, -1, -1) for x in self.bank[site.name])  # (batch, heads, tokens, dim)
        return attend(q, torch.cat([k, k_ref], dim=2), torch.cat([v, v_ref], dim=2), site.scale)


DENSE_UNTIL = 0.2  # DragonDiffusion guides every step before 10 / 50 ...


def guided_steps(steps: int, params: dict[str, Any]) -> set[int]:
    """Sampling-step positions j (0 = the noisiest) with energy guidance: all before DENSE_UNTIL, every other
    one before ``guidance_until`` (the official i < 10 or even i < 30 of 50); none at zero energy scale."""
    if params["energy_scale"] == 0:
        return set()
    until, dense = steps_until(params["guidance_until"], steps), steps_until(DENSE_UNTIL, steps)
    return {j for j in range(until) if j < dense or j % 2 == 0}


def keep_outside(latents: torch.Tensor, reference: torch.Tensor, editable: torch.Tensor) -> torch.Tensor:
    """The latent blend: the edited latent inside M, the inversion latent of the same step outside."""
    return editable * latents + (1 - editable) * reference
