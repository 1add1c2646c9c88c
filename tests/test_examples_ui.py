"""The example rows of every tab (``EXAMPLES`` in demos/<condition>.py): real photos first, with their licences
in assets/README.md; condition inputs that fit the photo (masks, a sketch, maps, boxes, drag points, keypoints);
every tab built with its rows without running a model; every row read by its tab into the methods' inputs."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from demos.common import Hub, read_inputs
from demos.drag import parse_drags
from demos.layout import parse_boxes
from demos.pose import parse_keypoints
from demos.sketch import scribble_map
from demos.slots import parse_region_pairs
from methods.core.imagenet import class_index
from methods.core.segmap import class_color, snap_to_palette
from methods.core.segmenter import SegMap
from methods.core.slots import REGIONS
from methods.core.spec import EditInputs

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
TAB_NAMES = ("text", "mask", "reference", "pose", "sketch", "segmentation", "layout", "drag", "audio", "classlabel")
TABS: dict[str, ModuleType] = {name: importlib.import_module(f"demos.{name}") for name in TAB_NAMES}


def _make_assets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_assets", ASSETS / "make_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_ASSETS = _make_assets()
PHOTOS = {f"assets/{name}" for name in MAKE_ASSETS.SKIMAGE_PHOTOS}
ALL_ROWS = [(name, row) for name, module in TABS.items() for row in module.EXAMPLES]


def _photo_rows() -> list[tuple[str, dict[str, Any]]]:
    return [(name, row) for name, row in ALL_ROWS if row.get("image") in PHOTOS]


def _size(path: str) -> tuple[int, int]:
    with Image.open(ROOT / path) as image:
        return image.size


def _files(row: dict[str, Any]) -> list[str]:
    return [v for v in row.values() if isinstance(v, str) and v.endswith((".png", ".jpg", ".wav"))]


# -- the rows -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TAB_NAMES)
def test_every_tab_shows_photo_rows_first_and_keeps_its_drawn_row(name: str) -> None:
    rows = TABS[name].EXAMPLES
    is_photo = [row.get("image") in PHOTOS for row in rows]
    assert is_photo[0], f"{name}: the first example is not one of the photos"
    assert is_photo == sorted(is_photo, reverse=True), f"{name}: a photo row comes after a drawn one"
    assert not is_photo[-1], f"{name}: the synthetic example row is gone"
    # The same columns in every row: a column one row lacks would be None there, not the widget's default.
    assert len({tuple(row) for row in rows}) == 1, f"{name}: the rows have different columns"


def test_every_file_in_the_rows_exists_in_assets() -> None:
    files = {path for _, row in ALL_ROWS for path in _files(row)}
    assert files, "no example names a file"
    for path in files:
        assert path.startswith("assets/") and (ROOT / path).is_file(), path


def test_every_photo_and_condition_file_is_listed_in_the_readme_with_a_licence() -> None:
    readme = (ASSETS / "README.md").read_text()
    lines = readme.splitlines()
    for path in sorted(ASSETS.iterdir()):
        if path.name in ("README.md", "make_assets.py") or path.name.startswith("."):
            continue
        rows = [line for line in lines if line.startswith(f"| `{path.name}` |")]
        assert len(rows) == 1, f"{path.name} has no row (or several) in assets/README.md"
    for name in MAKE_ASSETS.SKIMAGE_PHOTOS:
        (row,) = [line for line in lines if line.startswith(f"| `{name}` |")]
        licence = row.rsplit("|", 2)[-2].lower()
        assert "cc0" in licence or "public domain" in licence, f"{name}: no licence in its README row"
    assert "motorcycle" not in readme  # its skimage docstring states no licence


def test_the_photos_are_the_scikit_image_samples_resized_and_the_drawn_files_are_reproduced(tmp_path: Path) -> None:
    MAKE_ASSETS.write_photos(tmp_path)
    # Exactly the photos and the condition files the rows use (the sounds are drawn ones).
    used = {Path(f).name for _, row in _photo_rows() for f in _files(row) if not f.endswith(".wav")}
    assert {p.name for p in tmp_path.iterdir()} == used
    for path in tmp_path.iterdir():
        committed = ASSETS / path.name
        if path.suffix == ".png":  # drawn here: exactly the committed file
            assert path.read_bytes() == committed.read_bytes(), path.name
        else:  # JPEG: decoded, within what another libjpeg build might round differently
            new, old = (np.asarray(Image.open(p), dtype=np.float32) for p in (path, committed))
            assert new.shape == old.shape and max(new.shape[:2]) == 512, path.name
            assert np.abs(new - old).mean() < 0.5, path.name
    total = sum((ASSETS / p.name).stat().st_size for p in tmp_path.iterdir())
    assert total < 1_500_000


def test_every_photo_row_uses_files_made_for_it() -> None:
    """A photo's mask, sketch or map has the photo's size; the drawn house's files are not reused on a photo."""
    for name, row in _photo_rows():
        for key in ("mask_image", "sketch_upload", "segmap"):
            if row.get(key) is not None:
                assert _size(row[key]) == _size(row["image"]), (name, key)
                assert Path(row[key]).stem.split("_")[0] == Path(row["image"]).stem, (name, key)


# -- the condition inputs ----------------------------------------------------------------------------------------
def test_the_masks_are_binary_regions_inside_their_photo() -> None:
    masks = [(name, row) for name, row in _photo_rows() if row.get("mask_image")]
    assert {name for name, _ in masks} == {"mask", "reference", "pose"}
    for name, row in masks:
        mask = np.asarray(Image.open(ROOT / row["mask_image"]))
        assert mask.ndim == 2 and set(np.unique(mask)) == {0, 255}, (name, row["mask_image"])
        assert 0.03 < (mask > 0).mean() < 0.4, (name, row["mask_image"])


def test_the_coffee_mask_is_the_coffee_of_its_segmentation_map() -> None:
    mask = np.asarray(Image.open(ASSETS / "coffee_mask.png")) > 0
    segmap = SegMap.from_image(Image.open(ASSETS / "coffee_segmap.png"))
    food = (np.asarray(segmap.image) == np.array(class_color("food"), dtype=np.uint8)).all(axis=2)
    assert np.array_equal(mask, food)


def test_the_segmentation_maps_hold_palette_colours_and_their_region_class() -> None:
    rows = [row for name, row in _photo_rows() if name == "segmentation"]
    assert len(rows) == 2
    for row in rows:
        picture = Image.open(ROOT / row["segmap"]).convert("RGB")
        clean, _ = snap_to_palette(picture)
        assert np.array_equal(np.asarray(clean), np.asarray(picture)), row["segmap"]  # no colour off the palette
        classes = dict(SegMap.from_image(picture).classes(top=20))
        assert row["region_class"] in classes and classes[row["region_class"]] > 0.2, row["segmap"]


def test_the_cat_sketch_is_lines_on_a_page() -> None:
    (row,) = [row for name, row in _photo_rows() if name == "sketch" and row["sketch_upload"]]
    sketch = Image.open(ROOT / row["sketch_upload"])
    strokes = np.asarray(scribble_map(sketch, sketch.size).convert("L")) > 0
    assert 0.02 < strokes.mean() < 0.2


def test_the_layout_boxes_lie_inside_the_photo() -> None:
    rows = [row for name, row in ALL_ROWS if name == "layout"]
    for row in rows:
        items = json.loads(row["boxes"])
        assert all(0.0 <= v <= 1.0 for item in items for v in item["box"]), row["boxes"]
        boxes = parse_boxes(row["boxes"])
        assert [b.phrase for b in boxes] == [item["phrase"] for item in items]
        assert all(b.x0 < b.x1 and b.y0 < b.y1 for b in boxes)


def test_the_drag_points_and_regions_lie_inside_the_photo_and_agree() -> None:
    rows = [row for name, row in _photo_rows() if name == "drag"]
    assert len(rows) == 2
    for row in rows:
        width, height = size = _size(row["image"])
        assert all(0.0 <= v <= 1.0 for item in json.loads(row["drag_points"]) for v in item)
        (drag,) = parse_drags(row["drag_points"], size)
        assert all(0 <= x < width and 0 <= y < height for x, y in (drag.handle, drag.target))
        (pair,) = parse_region_pairs(row["region_pairs"], size)
        for box, point in ((pair.handle, drag.handle), (pair.target, drag.target)):
            assert 0 <= box[0] < point[0] < box[2] <= width and 0 <= box[1] < point[1] < box[3] <= height
        # The region moves as the point does (within a pixel's rounding of each corner).
        shift = np.subtract(drag.target, drag.handle)
        assert np.abs(np.subtract(pair.target[:2], pair.handle[:2]) - shift).max() <= 2


def test_the_astronaut_keypoints_and_the_waving_arm_inside_the_repose_mask() -> None:
    pose = TABS["pose"]
    still, waving = (parse_keypoints(json.dumps(points)) for points in (pose.ASTRONAUT_POSE, pose.ASTRONAUT_WAVING))
    assert sum(p is not None for p in still) == 11  # head, shoulders, arms; the hips and legs are out of frame
    (row,) = [row for row in pose.EXAMPLES if row["mask_image"]]
    assert json.loads(row["keypoints"]) == pose.ASTRONAUT_WAVING
    mask = np.asarray(Image.open(ROOT / row["mask_image"])) > 0
    height, width = mask.shape
    moved = [i for i, (a, b) in enumerate(zip(still, waving, strict=True)) if a != b]
    assert moved == [3, 4]  # right elbow and right wrist
    for index in moved:
        x, y = waving[index]
        assert mask[round(y * (height - 1)), round(x * (width - 1))], f"joint {index} is outside the mask"


def test_the_class_rows_name_imagenet_classes() -> None:
    rows = {row["image"]: row for name, row in ALL_ROWS if name == "classlabel"}
    ids = {image: (class_index(r["source_class"]), class_index(r["target_class"])) for image, r in rows.items()}
    assert ids["assets/chelsea.jpg"] == (281, 292)
    assert ids["assets/rocket.jpg"] == (657, 812)


# -- the tabs, built and read -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(backbone, monkeypatch_module) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]], gr.Examples]]:
    """Every tab built inside one gr.Blocks, with what it handed to add_examples."""
    hub = Hub(backbone)
    seen: dict[str, tuple[dict[str, Any], list[dict[str, Any]], gr.Examples]] = {}
    with gr.Blocks():
        for name, module in TABS.items():
            original = module.add_examples

            def record(widgets: dict[str, Any], rows: list[dict[str, Any]], tab: str = name, add=original) -> Any:
                seen[tab] = (widgets, rows, add(widgets, rows))
                return seen[tab][2]

            monkeypatch_module.setattr(module, "add_examples", record)
            with gr.Tab(name):
                module.create_demo(hub)
    return seen


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("name", TAB_NAMES)
def test_every_tab_builds_its_rows_into_examples_without_a_model(built, name: str) -> None:
    widgets, rows, examples = built[name]
    assert rows is TABS[name].EXAMPLES
    missing = {key for row in rows for key in row} - set(widgets)
    assert not missing, f"{name}: example columns without a widget (they would be dropped): {missing}"
    assert examples.fn is None and not examples.cache_examples
    assert examples.inputs == [widgets[key] for key in rows[0]]
    assert examples.examples == [list(row.values()) for row in rows]


def _values(widgets: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The widget values a click on the row gives the Run: the row's, the other widgets' defaults; files as the
    widgets deliver them (a PIL image, an audio path)."""
    values = {name: widget.value for name, widget in widgets.items()}
    for key, value in row.items():
        if isinstance(value, str) and isinstance(widgets[key], gr.Image):
            value = Image.open(ROOT / value).convert("RGB")
        elif isinstance(value, str) and isinstance(widgets[key], gr.Audio):
            value = str(ROOT / value)
        values[key] = value
    return values


@pytest.mark.parametrize("name", TAB_NAMES)
def test_every_photo_row_reads_into_the_inputs_it_means(built, backbone, name: str) -> None:
    widgets, rows, _ = built[name]
    hub, tab = Hub(backbone), TABS[name].TAB
    for row in [row for row in rows if row["image"] in PHOTOS]:
        inputs = read_inputs(hub, tab, _values(widgets, row), EditInputs(steps=1, guidance=7.5))
        if name != "classlabel":  # the photo itself, at the working size (the class tab centre-crops a square)
            expected = hub.source_image(Image.open(ROOT / row["image"]).convert("RGB"))
            assert np.array_equal(np.asarray(inputs.image), np.asarray(expected))
        if "prompt" in row:
            assert inputs.prompt == row["prompt"]
        if row.get("mask_image"):  # the mask reaches the methods, at the working size, covering what the file does
            file_cover = (np.asarray(Image.open(ROOT / row["mask_image"])) > 0).mean()
            assert inputs.mask is not None and inputs.mask.size == inputs.image.size
            assert abs((np.asarray(inputs.mask) > 0).mean() - file_cover) < 0.03
        if name in ("pose", "sketch", "segmentation"):
            assert inputs.control_image.size == inputs.image.size
        if name == "drag":
            assert len(inputs.drags) == 1 and len(inputs[REGIONS]) == 1
        if name == "layout":
            assert [b.phrase for b in inputs.boxes] == [item["phrase"] for item in json.loads(row["boxes"])]
        if name == "audio":
            assert inputs.audio.seconds > 2.5
        if name == "classlabel":
            assert (inputs.source_class, inputs.target_class) == tuple(
                class_index(row[k]) for k in ("source_class", "target_class")
            )
