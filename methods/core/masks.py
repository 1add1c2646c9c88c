"""Mask helpers shared by the masked methods and the mask tab: grow, smooth, feather, paste back, and the
latent-grid mask the pipelines blend with.

Masks are "L" images, 255 = region to edit (``EditInputs.mask``). Distances are Euclidean (scipy's exact
distance transform), so a radius means the same in every direction and costs the same for any radius.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from scipy import ndimage


def as_bool(mask: Image.Image) -> np.ndarray:
    """The mask as a boolean array (True = edit); values >= 128 count as painted, as everywhere else."""
    return np.asarray(mask.convert("L")) >= 128


def from_bool(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array.astype(np.uint8) * 255, "L")


def dilate(mask: Image.Image, pixels: float) -> Image.Image:
    """Grow the mask by ``pixels`` (a disc): every pixel within that distance of the mask joins it."""
    region = as_bool(mask)
    if pixels <= 0 or not region.any():
        return from_bool(region)
    return from_bool(ndimage.distance_transform_edt(~region) <= pixels)


def smooth(mask: Image.Image, pixels: float) -> Image.Image:
    """Round the outline: blur with a Gaussian of ``pixels`` and threshold at one half (fills pinholes,
    removes specks and jagged edges; the mask stays binary)."""
    region = as_bool(mask)
    if pixels <= 0:
        return from_bool(region)
    return from_bool(ndimage.gaussian_filter(region.astype(np.float32), sigma=pixels) >= 0.5)


def feather(mask: Image.Image, pixels: float) -> Image.Image:
    """A soft alpha that ramps from 0 on the mask's outline to 255 at ``pixels`` inside it.

    The ramp lies inside the mask, so everything outside it stays exactly 0 (a paste-back with this alpha
    keeps every pixel outside the mask exactly).
    """
    region = as_bool(mask)
    if pixels <= 0:
        return from_bool(region)
    inside = ndimage.distance_transform_edt(region)  # distance to the nearest pixel outside the mask
    return Image.fromarray(np.round(np.clip(inside / pixels, 0.0, 1.0) * 255).astype(np.uint8), "L")


def paste_back(source: Image.Image, result: Image.Image, mask: Image.Image, feather_pixels: float = 0) -> Image.Image:
    """The result inside the mask, the source outside it (exactly), with an optional feathered seam."""
    alpha = feather(mask, feather_pixels)
    return Image.composite(result.convert("RGB"), source.convert("RGB").resize(result.size), alpha)


def latent_mask(
    mask: Image.Image,
    latent_size: tuple[int, int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The mask on the latent grid, shape (1, 1, h, w), 1 = edit: binarised at one half and downsampled
    by nearest neighbour, exactly as diffusers' inpainting pipeline does it (``prepare_mask_latents``)."""
    pixels = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255.0)[None, None]
    pixels = (pixels >= 0.5).to(torch.float32)
    return torch.nn.functional.interpolate(pixels, size=latent_size).to(device=device, dtype=dtype)


def covered_cells(mask: Image.Image, grid: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """The mask on a latent grid (h, w), shape (1, 1, h, w): a cell is 1 if any of its pixels is in the mask."""
    pixels = torch.from_numpy(as_bool(mask)).float()[None, None]
    return torch.nn.functional.adaptive_max_pool2d(pixels, grid).to(device)


def check_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The mask at the image's size (nearest), binary."""
    if mask.size != size:
        mask = mask.convert("L").resize(size, Image.Resampling.NEAREST)
    return from_bool(as_bool(mask))
