"""Custom input widgets shared by tabs: masks drawn in an ImageEditor, click-placed points and boxes.

Point and box widgets keep their value as JSON text in a Textbox, so the same value can be typed,
edited, or sent through the API (gradio_client), and a click on the canvas just rewrites that text.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from methods.core.images import binary_mask, load_image
from methods.core.limits import MAX_TEXT_CHARS, at_most, is_number, shown
from methods.core.spec import InputError


def mask_editor(label: str = "Mask: paint the region to edit", elem_id: str | None = None) -> gr.ImageEditor:
    return gr.ImageEditor(
        type="pil",
        label=label,
        sources=["upload", "clipboard"],
        brush=gr.Brush(colors=["#ffffff"], default_size=24, color_mode="fixed"),
        transforms=(),
        layers=False,
        elem_id=elem_id,
    )


def editor_layers(value: Any, what: str = "the drawn layer") -> list[Image.Image]:
    """The painted layers of an ImageEditor value, as RGBA pictures (the background left out)."""
    if not value or not isinstance(value, dict):
        return []
    layers = value.get("layers") or []
    return [(x if isinstance(x, Image.Image) else load_image(x, what)).convert("RGBA") for x in layers if x is not None]


def editor_layers_mask(value: Any, size: tuple[int, int]) -> Image.Image | None:
    """The union of the painted layers of an ImageEditor value (alpha > 0 = painted)."""
    union: np.ndarray | None = None
    for layer in editor_layers(value, "the mask layer"):
        alpha = np.asarray(layer.getchannel("A").resize(size, Image.Resampling.NEAREST)) > 0
        union = alpha if union is None else union | alpha
    if union is None or not union.any():
        return None
    return Image.fromarray((union * 255).astype(np.uint8), "L")


def editor_background(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("background") or value.get("composite")
    return value


def editor_composite(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("composite") or value.get("background")
    return value


def mask_from(drawn: Any, uploaded: Any, size: tuple[int, int]) -> Image.Image | None:
    """A drawn mask (ImageEditor layers) or an uploaded one (white = edit), at ``size``."""
    mask = editor_layers_mask(drawn, size)
    if mask is None and uploaded is not None:
        mask = binary_mask(uploaded, size, "the uploaded mask")
    return mask


def parse_json_list(text: str | None, what: str, example: str, cap: int | None = None, hint: str = "") -> list[Any]:
    """A JSON list typed or sent by a client (empty text = []): at most ``cap`` items, no NaN or Infinity."""
    if not text or not text.strip():
        return []
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"The {what} text is {len(text)} characters long; please keep it under {MAX_TEXT_CHARS}.")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise InputError(f"The {what} are not valid JSON ({error.msg}); expected e.g. {example}.") from None
    except ValueError:  # NaN / Infinity: json accepts them, no coordinate may be one
        raise InputError(f"The {what} must be finite numbers (no NaN or Infinity), e.g. {example}.") from None
    if not isinstance(value, list):
        raise InputError(f"The {what} must be a JSON list, e.g. {example}.")
    if cap is not None:
        at_most(value, cap, what)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def relative(value: Any, what: str, example: str) -> float:
    """A coordinate in 0..1 (a finite number, not a boolean), else the sentence with an example."""
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"The {what} must be numbers in 0..1, e.g. {example}; got {shown(value)}.")
    return float(value)


def dump(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


DISPLAY_SIDE = 512  # click canvases are shown at least this large (Gradio never upscales an image)


def display_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = max(1.0, DISPLAY_SIDE / max(size))
    return round(size[0] * scale), round(size[1] * scale)


def for_display(image: Image.Image) -> Image.Image:
    """The image a click canvas shows: upscaled to ``DISPLAY_SIDE``; clicks are read relative to it."""
    size = display_size(image.size)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def relative_click(evt: gr.SelectData, canvas_size: tuple[int, int]) -> tuple[float, float]:
    """A click on a canvas of ``canvas_size`` pixels, as (x, y) in 0..1."""
    width, height = canvas_size
    return evt.index[0] / max(width - 1, 1), evt.index[1] / max(height - 1, 1)
