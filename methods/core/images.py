"""Image normalisation and the pictures the grid shows (overlays, cards, the grid itself)."""

from __future__ import annotations

import io
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from methods.core.spec import Box, Drag, InputError

MAX_PIXELS = 64_000_000  # larger uploads are refused with a message, not decoded
# PIL refuses to decode an image over twice its limit (DecompressionBombError) before allocating it; with this
# limit that is anything over MAX_PIXELS, wherever it is opened (our loaders and Gradio's preprocessing alike).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2
warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # between the two: our own check says it


def too_large(what: str, width: int | None = None, height: int | None = None) -> InputError:
    size = f" is {width}×{height} pixels" if width and height else " is too large"
    return InputError(f"{_capital(what)}{size}; please upload one under {MAX_PIXELS // 1_000_000} megapixels.")


def unreadable(what: str) -> InputError:
    return InputError(f"{_capital(what)} could not be read as an image. Please upload a PNG, JPEG or WebP file.")


def load_image(value: Any, what: str = "the image") -> Image.Image:
    """Any upload (PIL, numpy, path, bytes) -> an RGB PIL image; clear InputError otherwise.

    ``what`` names the input with its article ("the source photo"). Handles EXIF rotation, alpha (composited on
    white), palette, grayscale and 16-bit images. Pictures over MAX_PIXELS are refused before decoding.
    """
    if value is None:
        raise InputError(f"Please upload {what}.")
    try:
        if isinstance(value, Image.Image):
            image = value
        elif isinstance(value, np.ndarray):
            image = _from_array(value)
        elif isinstance(value, bytes):
            image = Image.open(io.BytesIO(value))
        elif isinstance(value, str | Path):
            image = Image.open(value)
        elif isinstance(value, dict) and "path" in value:  # gradio FileData
            image = Image.open(value["path"])
        else:
            raise InputError(f"{_capital(what)} is not a picture; please upload a PNG, JPEG or WebP file.")
        if image.width * image.height > MAX_PIXELS:
            raise too_large(what, image.width, image.height)
        image = ImageOps.exif_transpose(image)
        image.load()
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise too_large(what) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise unreadable(what) from None
    return to_rgb(image)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype == np.uint16 or array.max(initial=0) > 255:
        array = (array.astype(np.float64) / max(float(array.max()), 1.0) * 255.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(array.astype(np.float64) * scale, 0, 255).round().astype(np.uint8)
    return Image.fromarray(array)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        array = (array - low) / max(high - low, 1e-9) * 255.0
        image = Image.fromarray(array.round().astype(np.uint8), "L")
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


def fit_image(image: Image.Image, size: int, multiple: int) -> Image.Image:
    """Resize so the longest side is ``size`` and both sides are multiples of ``multiple``."""
    scale = size / max(image.width, image.height)
    width = max(multiple, int(round(image.width * scale / multiple)) * multiple)
    height = max(multiple, int(round(image.height * scale / multiple)) * multiple)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)


def square_image(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize (for class-conditional models trained on square crops)."""
    return ImageOps.fit(image, (size, size), Image.Resampling.LANCZOS)


def binary_mask(value: Any, size: tuple[int, int], what: str = "the mask") -> Image.Image | None:
    """Any mask (PIL, numpy, path; white or opaque = edit) -> "L" 0/255 of ``size``; None if empty."""
    if value is None:
        return None
    if isinstance(value, Image.Image):
        mask = value
    else:
        mask = load_image(value, what)
    if mask.mode in {"RGBA", "LA"}:
        alpha = np.asarray(mask.getchannel("A"))
        gray = np.asarray(mask.convert("L"))
        array = np.where(alpha > 0, np.maximum(gray, alpha), 0)
    else:
        array = np.asarray(mask.convert("L"))
    mask = Image.fromarray(((array > 127) * 255).astype(np.uint8), "L").resize(size, Image.Resampling.NEAREST)
    return mask if np.asarray(mask).any() else None


def mask_overlay(image: Image.Image, mask: Image.Image, color: tuple[int, int, int] = (255, 40, 40)) -> Image.Image:
    tint = Image.new("RGB", image.size, color)
    alpha = mask.convert("L").resize(image.size).point(lambda v: int(v * 0.5))
    return Image.composite(tint, image, alpha)


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow
        return ImageFont.load_default()


def draw_boxes(image: Image.Image, boxes: Sequence[Box]) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    palette = [(255, 60, 60), (60, 200, 60), (60, 120, 255), (255, 180, 0), (200, 60, 255)]
    for i, box in enumerate(boxes):
        color = palette[i % len(palette)]
        xy = (box.x0 * out.width, box.y0 * out.height, box.x1 * out.width, box.y1 * out.height)
        draw.rectangle(xy, outline=color, width=max(1, out.width // 128))
        draw.text((xy[0] + 2, xy[1] + 1), box.phrase, fill=color, font=_font(max(10, out.width // 24)))
    return out


def draw_drags(image: Image.Image, drags: Sequence[Drag], mask: Image.Image | None = None) -> Image.Image:
    out = mask_overlay(image, mask, (255, 255, 255)) if mask is not None else image.copy()
    draw = ImageDraw.Draw(out)
    radius = max(2, out.width // 64)
    for drag in drags:
        (hx, hy), (tx, ty) = drag.handle, drag.target
        draw.line((hx, hy, tx, ty), fill=(255, 255, 255), width=max(1, radius // 2))
        draw.ellipse((hx - radius, hy - radius, hx + radius, hy + radius), fill=(255, 40, 40))
        draw.ellipse((tx - radius, ty - radius, tx + radius, ty + radius), fill=(40, 90, 255))
    return out


def text_card(text: str, size: tuple[int, int], background: tuple[int, int, int] = (40, 40, 40)) -> Image.Image:
    """A plain card with wrapped text: used for error cells and for conditions without a picture."""
    card = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(card)
    font_size = max(10, size[0] // 22)
    width_chars = max(12, int(size[0] / (font_size * 0.6)))
    lines = [line for paragraph in text.splitlines() for line in (textwrap.wrap(paragraph, width_chars) or [""])]
    draw.multiline_text((6, 6), "\n".join(lines), fill=(235, 235, 235), font=_font(font_size), spacing=3)
    return card


def _header_lines(title: str, detail: str, width_chars: int) -> tuple[list[str], list[str]]:
    return textwrap.wrap(title, width_chars)[:2] or [""], textwrap.wrap(detail, width_chars + 8)[:3]


def compose_grid(
    cells: Sequence[tuple[Image.Image, str] | tuple[Image.Image, str, str]],
    cell_size: int = 256,
    columns: int = 4,
    footer: str = "",
) -> Image.Image:
    """One PNG of cells (the condition first), each under a header (its title, then its details in smaller
    type), with a footer line saying what all cells shared (seed, steps, backbone), for download."""
    columns = max(1, min(columns, len(cells)))
    rows = (len(cells) + columns - 1) // columns
    title_font, detail_font = _font(14), _font(11)
    width_chars = max(12, cell_size // 8)
    header_height = 2 * 17 + 3 * 13 + 6
    footer_lines = textwrap.wrap(footer, max(20, columns * cell_size // 6)) if footer else []
    footer_height = 8 + 14 * len(footer_lines) if footer else 0
    grid = Image.new("RGB", (columns * cell_size, rows * (cell_size + header_height) + footer_height), "white")
    draw = ImageDraw.Draw(grid)
    for index, cell in enumerate(cells):
        image, title = cell[0], cell[1]
        detail = cell[2] if len(cell) > 2 else ""
        x, y = (index % columns) * cell_size, (index // columns) * (cell_size + header_height)
        titles, details = _header_lines(title, detail, width_chars)
        draw.multiline_text((x + 4, y + 3), "\n".join(titles), fill=(0, 0, 0), font=title_font, spacing=3)
        if details:
            top = y + 3 + 17 * len(titles)
            draw.multiline_text((x + 4, top), "\n".join(details), fill=(70, 70, 70), font=detail_font, spacing=2)
        thumb = ImageOps.contain(image.convert("RGB"), (cell_size, cell_size))
        grid.paste(thumb, (x + (cell_size - thumb.width) // 2, y + header_height + (cell_size - thumb.height) // 2))
    if footer:
        draw.line((0, grid.height - footer_height, grid.width, grid.height - footer_height), fill=(180, 180, 180))
        text = "\n".join(footer_lines)
        draw.multiline_text((4, grid.height - footer_height + 4), text, fill=(40, 40, 40), font=detail_font, spacing=3)
    return grid


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """Two pictures at the same height, next to each other on white."""
    height = max(left.height, right.height)
    left = ImageOps.contain(left, (height * 4, height))
    right = ImageOps.contain(right, (height * 4, height))
    canvas = Image.new("RGB", (left.width + right.width + 4, height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 4, 0))
    return canvas
