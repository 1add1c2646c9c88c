"""ADE20K segmentation maps: extracted from a photo by a semantic segmenter, and edited by class.

The map ControlNet-Seg and T2I-Adapter-Seg read is an ADE20K label map drawn in the palette they were trained
on (``methods.core.segmap``). From a photo it comes from the add-on ``ade20k_segmenter``: a transformers
semantic segmenter and its image processor (UperNet with a ConvNeXt-S trunk, ``openmmlab/upernet-convnext-small``,
the annotator hysts' ControlNet v1.1 Space uses; any ``AutoModelForSemanticSegmentation`` with the 150 ADE20K
labels works through ``HUB_ADDON_ADE20K_SEGMENTER``). The logits are resized to the requested size by the
processor's ``post_process_semantic_segmentation`` and arg-maxed, so the map holds palette colours only.

Edits work on class ids, never on colours directly: replace every pixel of one class by another, or pick a
region (all pixels of a class, or the connected piece of a class under a click) as a mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from methods.core.inversion_cache import image_digest
from methods.core.lru import LRU
from methods.core.segmap import ADE20K_CLASSES, classes_in, palette, snap_to_palette
from methods.core.spec import InputError

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

ADDON = "ade20k_segmenter"


@dataclass
class SegMap:
    """A label map: ``ids`` (height x width class indices) and its palette picture."""

    ids: np.ndarray

    @property
    def image(self) -> Image.Image:
        return Image.fromarray(palette()[self.ids])

    @property
    def size(self) -> tuple[int, int]:
        return self.ids.shape[1], self.ids.shape[0]

    def classes(self, top: int = 8) -> list[tuple[str, float]]:
        return classes_in(self.ids, top)

    @classmethod
    def from_image(cls, image: Image.Image) -> SegMap:
        """A colour map (uploaded or painted) snapped to the nearest palette colours."""
        return cls(snap_to_palette(image)[1])


def segment_photo(backbone: Backbone, photo: Image.Image, size: tuple[int, int] | None = None) -> SegMap:
    """The ADE20K label map of ``photo`` at ``size`` (default: the photo's size), from the segmenter add-on.

    Computed once per (photo, size): the tab asks again on every change of its region widgets and at Run. The
    cached label array is read-only (edits such as :func:`replace_class` work on copies)."""
    width, height = size or photo.size
    maps = backbone.cache("ade20k_maps", lambda: LRU(capacity=8))
    key = (image_digest(photo), width, height)
    ids = maps.get(key)
    if ids is None:
        ids = _segment(backbone, photo, (width, height))
        ids.flags.writeable = False
        maps.put(key, ids)
    return SegMap(ids)


def _segment(backbone: Backbone, photo: Image.Image, size: tuple[int, int]) -> np.ndarray:
    model, processor = backbone.addon(ADDON)
    if model.config.num_labels != len(ADE20K_CLASSES):
        raise ValueError(
            f"the segmenter predicts {model.config.num_labels} classes; ControlNet-Seg needs the 150 ADE20K ones"
        )
    width, height = size
    pixels = processor(images=photo.convert("RGB"), return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        outputs = model(pixel_values=pixels.to(model.device, model.dtype))
    ids = processor.post_process_semantic_segmentation(outputs, target_sizes=[(height, width)])[0]
    return ids.cpu().numpy().astype(np.int64)


def class_index(name: str) -> int:
    if name not in ADE20K_CLASSES:
        raise InputError(f"“{name}” is not an ADE20K class; pick one of the 150 names in the class list.")
    return ADE20K_CLASSES.index(name)


def replace_class(segmap: SegMap, source: str, target: str) -> SegMap:
    """Every pixel of class ``source`` becomes ``target``."""
    ids = segmap.ids.copy()
    ids[ids == class_index(source)] = class_index(target)
    return SegMap(ids)


def class_mask(segmap: SegMap, name: str) -> Image.Image:
    """All pixels of one class, as an "L" mask (255 = the class)."""
    region = segmap.ids == class_index(name)
    if not region.any():
        present = ", ".join(n for n, _ in segmap.classes(top=12))
        raise InputError(f"The map has no “{name}” region. Classes in the map: {present}.")
    return Image.fromarray((region * 255).astype(np.uint8), "L")


def region_at(segmap: SegMap, x: float, y: float) -> tuple[Image.Image, str]:
    """The connected piece of the class under a click (relative x, y in 0..1) as a mask, and the class name."""
    from scipy import ndimage

    width, height = segmap.size
    col = min(max(int(round(x * (width - 1))), 0), width - 1)
    row = min(max(int(round(y * (height - 1))), 0), height - 1)
    class_id = int(segmap.ids[row, col])
    pieces, _ = ndimage.label(segmap.ids == class_id)
    region = pieces == pieces[row, col]
    return Image.fromarray((region * 255).astype(np.uint8), "L"), ADE20K_CLASSES[class_id]
