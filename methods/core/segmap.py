"""ADE20K label maps: the 150 class names with the colour palette ControlNet-Seg was trained on."""

from __future__ import annotations

import numpy as np
from PIL import Image

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)  # fmt: skip


def palette() -> np.ndarray:
    """(150, 3) uint8 colours, index = ADE20K class id (controlnet_aux ships the palette)."""
    from controlnet_aux.util import ade_palette

    return np.asarray(ade_palette(), dtype=np.uint8)


def class_color(name: str) -> tuple[int, int, int]:
    if name not in ADE20K_CLASSES:
        raise KeyError(f"unknown ADE20K class {name!r}")
    return tuple(int(v) for v in palette()[ADE20K_CLASSES.index(name)])


def snap_to_palette(image: Image.Image) -> tuple[Image.Image, np.ndarray]:
    """Map every pixel to the nearest palette colour (cleans JPEG/resizing artefacts).

    Returns the clean colour map and the class-id array.
    """
    colors = palette().astype(np.int32)
    pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
    flat = pixels.reshape(-1, 3)
    unique, inverse = np.unique(flat, axis=0, return_inverse=True)
    distances = ((unique[:, None, :] - colors[None, :, :]) ** 2).sum(-1)
    ids = distances.argmin(1)[inverse.reshape(-1)].reshape(pixels.shape[:2])
    return Image.fromarray(colors[ids].astype(np.uint8)), ids


def classes_in(ids: np.ndarray, top: int = 8) -> list[tuple[str, float]]:
    """The classes covering the most area, with their fractions."""
    counts = np.bincount(ids.reshape(-1), minlength=len(ADE20K_CLASSES))
    order = np.argsort(counts)[::-1]
    return [(ADE20K_CLASSES[i], counts[i] / ids.size) for i in order[:top] if counts[i] > 0]
