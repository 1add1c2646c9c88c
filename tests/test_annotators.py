"""The sketch tab's line / edge annotators: controlnet_aux's lineart, HED and PiDiNet networks as add-ons (tiny
random weights of the real architectures, in the real file names, loaded by controlnet_aux's own
``from_pretrained``) and Canny. Maps come back at the requested size, deterministic; Canny finds drawn edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from controlnet_aux.hed import HEDdetector
from controlnet_aux.lineart import LineartDetector
from controlnet_aux.pidi import PidiNetDetector
from PIL import Image, ImageDraw
from scipy.ndimage import distance_transform_edt

from methods.core.annotators import LINE_DETECTORS, detection_resolution, extract_lines
from methods.core.spec import InputError

NETWORKS = [
    ("annotator_lineart", LineartDetector, {"sk_model.pth", "sk_model2.pth"}),
    ("annotator_hed", HEDdetector, {"ControlNetHED.pth"}),
    ("annotator_pidinet", PidiNetDetector, {"table5_pidinet.pth"}),
]


@pytest.mark.parametrize(("addon", "cls", "files"), NETWORKS)
def test_tiny_annotators_use_the_real_files_and_loader(backbone, addon: str, cls: type, files: set[str]) -> None:
    folder = Path(backbone.addon_location(addon))
    assert files <= {p.name for p in folder.iterdir()}  # lllyasviel/Annotators' file names
    assert isinstance(backbone.addon(addon), cls)  # loaded by controlnet_aux's from_pretrained(folder)


@pytest.mark.parametrize("detector", LINE_DETECTORS)
@pytest.mark.parametrize("size", [(128, 96), (80, 112)])
def test_maps_have_the_requested_size_and_are_deterministic(backbone, photo, detector: str, size) -> None:
    first = extract_lines(backbone, photo, detector, size)
    second = extract_lines(backbone, photo, detector, size)
    assert first.size == size and first.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    assert extract_lines(backbone, photo, detector).size == photo.size  # default: the photo's size


def test_networks_differ_and_read_the_photo(backbone, photo) -> None:
    maps = {name: np.asarray(extract_lines(backbone, photo, name), dtype=np.int16) for name in LINE_DETECTORS}
    assert not np.array_equal(maps["lineart"], maps["lineart (coarse)"])  # two generators (sk_model, sk_model2)
    flipped = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for name in ("lineart", "hed", "canny"):  # a different photo gives a different map
        other = np.asarray(extract_lines(backbone, flipped, name), dtype=np.int16)
        assert np.abs(other - maps[name]).mean() > 0.5, name


def _rectangle_photo(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    picture = Image.new("RGB", size, (20, 20, 20))
    ImageDraw.Draw(picture).rectangle(box, fill=(230, 230, 230))
    return picture


def test_canny_finds_the_drawn_edges(backbone) -> None:
    size, box = (128, 96), (30, 20, 90, 70)
    edges = np.asarray(extract_lines(backbone, _rectangle_photo(size, box), "canny").convert("L")) > 64
    outline = np.zeros(edges.shape, dtype=bool)
    x0, y0, x1, y1 = box
    outline[y0 : y1 + 1, [x0, x1]] = True
    outline[[y0, y1], x0 : x1 + 1] = True
    to_outline, to_edge = distance_transform_edt(~outline), distance_transform_edt(~edges)
    assert edges.sum() > 100  # > 64 as the sketch tab binarises lines (resizing halves a 1-px edge)
    assert (to_outline[edges] <= 2).mean() > 0.98  # edge pixels lie on the drawn outline (measured: 1.0)
    assert (to_edge[outline] <= 2).mean() > 0.95  # and cover it (measured: 1.0)
    assert not edges[y0 + 10 : y1 - 10, x0 + 10 : x1 - 10].any() and not edges[:10, :10].any()


def test_bad_choices_say_what_to_do(backbone, photo) -> None:
    with pytest.raises(InputError, match="choose one of"):
        extract_lines(backbone, photo, "sobel")
    with pytest.raises(InputError, match="low threshold"):
        extract_lines(backbone, photo, "canny", canny_low=200, canny_high=100)
    assert detection_resolution((128, 96)) == 128 and detection_resolution((512, 768)) == 512
    assert detection_resolution((2000, 3000)) == 512
