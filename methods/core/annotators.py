"""Line and edge maps from a photo, for the sketch tab: controlnet_aux's annotators.

Lineart (``LineartDetector``, fine or coarse), HED (``HEDdetector``) and PiDiNet (``PidiNetDetector``) are
add-ons: the real weights are the .pth files in ``lllyasviel/Annotators``; the tiny profile writes random
weights of the same architectures under the same file names, and both load through controlnet_aux's own
``from_pretrained``. Canny (``CannyDetector``, OpenCV) needs no weights. Every map comes back as white lines
on black at the requested size, the convention of ControlNet's lineart / scribble models and T2I-Adapter
Sketch; HED and PiDiNet use controlnet_aux's scribble post-process (thin, binary lines).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from methods.core.spec import InputError

if TYPE_CHECKING:
    import torch

    from methods.core.backbone import Backbone

# Choices offered by the sketch tab, in the order shown.
LINE_DETECTORS = ("lineart", "lineart (coarse)", "hed", "pidinet", "canny")

# add-on name -> (controlnet_aux module, detector class)
_ANNOTATOR_CLASSES = {
    "annotator_lineart": ("controlnet_aux.lineart", "LineartDetector"),
    "annotator_hed": ("controlnet_aux.hed", "HEDdetector"),
    "annotator_pidinet": ("controlnet_aux.pidi", "PidiNetDetector"),
}
_ADDON_OF = {
    "lineart": "annotator_lineart",
    "lineart (coarse)": "annotator_lineart",
    "hed": "annotator_hed",
    "pidinet": "annotator_pidinet",
}


def load_line_annotator(addon: str, location: str, device: torch.device) -> Any:
    """The controlnet_aux detector of ``addon`` from a folder (or hub repo) holding its .pth files."""
    module_name, class_name = _ANNOTATOR_CLASSES[addon]
    detector_class = getattr(importlib.import_module(module_name), class_name)
    return detector_class.from_pretrained(location).to(device)


def detection_resolution(size: tuple[int, int]) -> int:
    """The annotators' working resolution: the photo's shorter side rounded up to a multiple of 64, at most 512
    (the annotators' default; the tiny backbone's 128 px photos are detected at 128)."""
    return int(min(512, max(64, -(-min(size) // 64) * 64)))


def extract_lines(
    backbone: Backbone,
    photo: Image.Image,
    detector: str,
    size: tuple[int, int] | None = None,
    canny_low: int = 100,
    canny_high: int = 200,
) -> Image.Image:
    """White lines on black, RGB, at ``size`` (default: the photo's), found by ``detector`` (LINE_DETECTORS)."""
    if detector not in LINE_DETECTORS:
        raise InputError(f"Unknown line detector {detector!r}; choose one of {', '.join(LINE_DETECTORS)}.")
    array = np.asarray(photo.convert("RGB"))
    size = size or photo.size
    resolution = detection_resolution(photo.size)
    common = {"detect_resolution": resolution, "image_resolution": resolution, "output_type": "np"}
    if detector == "canny":
        from controlnet_aux.canny import CannyDetector

        if not 0 <= canny_low <= canny_high:
            raise InputError("Canny needs 0 <= low threshold <= high threshold.")
        lines = CannyDetector()(array, low_threshold=canny_low, high_threshold=canny_high, **common)
    else:
        annotator = backbone.addon(_ADDON_OF[detector])
        if detector.startswith("lineart"):
            lines = annotator(array, coarse=detector.endswith("(coarse)"), **common)
        else:
            lines = annotator(array, scribble=True, **common)
    return Image.fromarray(np.asarray(lines, dtype=np.uint8)).convert("RGB").resize(size, Image.Resampling.BILINEAR)
