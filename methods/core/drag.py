"""The point-drag building blocks of feature-based drag editing (DragDiffusion, after DragGAN): a hook on one
UNet decoder block, bilinear patches at sub-pixel positions, the motion-supervision loss and nearest-feature
point tracking. Positions are (row, col) on the feature grid."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class DecoderFeatures:
    """A forward hook keeping the output of one UNet decoder block; remove() takes it off again."""

    def __init__(self, block: torch.nn.Module) -> None:
        self.value: torch.Tensor | None = None
        self.handle = block.register_forward_hook(self._keep)

    def _keep(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.value = output[0] if isinstance(output, tuple) else output

    def remove(self) -> None:
        self.handle.remove()


def sample_patch(features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (1, C, len(rows), len(cols)) of ``features`` at fractional grid positions."""
    height, width = features.shape[-2:]
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    grid = torch.stack([2 * grid_x / (width - 1) - 1, 2 * grid_y / (height - 1) - 1], dim=-1)
    return F.grid_sample(features, grid[None], mode="bilinear", align_corners=True)


def motion_losses(features: torch.Tensor, handles: torch.Tensor, targets: torch.Tensor, radius: int) -> torch.Tensor:
    """Per-point motion supervision: patch around h shifted one unit step towards g vs. the detached patch."""
    height, width = features.shape[-2:]
    losses = []
    for handle, target in zip(handles, targets, strict=True):
        direction = (target - handle) / (target - handle).norm().clamp_min(1e-6)
        row, col = int(handle[0]), int(handle[1])
        rows = torch.arange(max(0, row - radius), min(height, row + radius + 1), device=features.device)
        cols = torch.arange(max(0, col - radius), min(width, col + radius + 1), device=features.device)
        source = features[:, :, rows][:, :, :, cols].detach()
        moved = sample_patch(features, rows.float() + direction[0], cols.float() + direction[1])
        losses.append((moved - source).abs().mean(dim=1).sum())
    return torch.stack(losses)


@torch.no_grad()
def track_points(features: torch.Tensor, reference: torch.Tensor, handles: torch.Tensor, radius: int) -> torch.Tensor:
    """Each handle moves to the position within ``radius`` whose feature is nearest (L1) to its reference."""
    height, width = features.shape[-2:]
    tracked = handles.clone()
    for i, (row, col) in enumerate(handles.long().tolist()):
        r0, r1 = max(0, row - radius), min(height, row + radius + 1)
        c0, c1 = max(0, col - radius), min(width, col + radius + 1)
        distance = (features[0, :, r0:r1, c0:c1] - reference[i][:, None, None]).abs().sum(dim=0)
        best = int(distance.argmin())
        tracked[i] = torch.tensor([r0 + best // (c1 - c0), c0 + best % (c1 - c0)], dtype=handles.dtype)
    return tracked
