"""Segmentation tab depth: T2I-Adapter Segmentation equals diffusers' adapter pipeline, the region edit equals
diffusers' ControlNet inpainting pipeline and keeps the photo outside the region, the ADE20K segmenter returns
palette maps of the requested size, map edits work on class ids, and the tab builds the inputs it promises."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionAdapterPipeline, StableDiffusionControlNetInpaintPipeline, StableDiffusionPipeline
from PIL import Image
from scipy import ndimage

from methods.core import masks
from methods.core.examples import ASSETS, example_inputs
from methods.core.pose import DEFAULT_KEYPOINTS, render_pose
from methods.core.runner import run_comparison
from methods.core.segmap import ADE20K_CLASSES, palette
from methods.core.segmenter import SegMap, _segment, class_mask, region_at, replace_class, segment_photo
from methods.core.slots import MAP_REGION, SECOND_POSE
from methods.core.spec import InputError
from tests.conftest import make_photo
from tests.helpers import assert_same_image, direct_components, seeded_generator

SEED = 7


def _generator() -> torch.Generator:
    return seeded_generator(SEED)


def _palette_only(image: Image.Image) -> bool:
    colours = {tuple(c) for c in np.asarray(image.convert("RGB")).reshape(-1, 3).tolist()}
    return colours <= {tuple(c) for c in palette().tolist()}


# -- T2I-Adapter Segmentation ---------------------------------------------------------------------------
def _adapter_direct(backbone, inputs, scale: float) -> Image.Image:
    pipe = StableDiffusionAdapterPipeline(**direct_components(backbone, adapter=backbone.addon("t2i_adapter_seg")))
    width, height = inputs.image.size
    return pipe(
        prompt=inputs.prompt,
        image=inputs.control_image,
        height=height,
        width=width,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        adapter_conditioning_scale=scale,
        generator=_generator(),
    ).images[0]


def test_t2i_adapter_seg_equals_adapter_pipeline(backbone) -> None:
    inputs = example_inputs("segmentation", backbone)
    hub = run_comparison(
        backbone,
        "segmentation",
        ["t2i_adapter_seg"],
        inputs,
        SEED,
        params={"t2i_adapter_seg": {"adapter_conditioning_scale": 0.8}},
    )
    assert_same_image(hub.result("t2i_adapter_seg"), _adapter_direct(backbone, inputs, 0.8))


def test_t2i_adapter_features_are_additive(backbone) -> None:
    """Weight 0 adds zero features: exactly plain text-to-image; weight 1 changes the image."""
    inputs = example_inputs("segmentation", backbone)
    off = run_comparison(
        backbone,
        "segmentation",
        ["t2i_adapter_seg"],
        inputs,
        SEED,
        params={"t2i_adapter_seg": {"adapter_conditioning_scale": 0}},
    ).result("t2i_adapter_seg")
    width, height = inputs.image.size
    plain = StableDiffusionPipeline(**direct_components(backbone))(
        prompt=inputs.prompt,
        height=height,
        width=width,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    assert_same_image(off, plain)
    on = run_comparison(backbone, "segmentation", ["t2i_adapter_seg"], inputs, SEED).result("t2i_adapter_seg")
    change = np.abs(np.asarray(on, dtype=np.int16) - np.asarray(off, dtype=np.int16)).mean()
    assert change > 1.0, f"the map changed the image by only {change:.2f} grey levels on average"


# -- the ADE20K segmenter and map edits -----------------------------------------------------------------
def test_segmenter_map_has_requested_size_palette_colours_and_is_deterministic(backbone, photo) -> None:
    first = segment_photo(backbone, photo, (96, 64))
    second = SegMap(_segment(backbone, photo, (96, 64)))  # computed again, not served by the cache
    assert first.image.size == (96, 64) and first.ids.shape == (64, 96)
    np.testing.assert_array_equal(first.ids, second.ids)
    assert _palette_only(first.image)
    assert first.ids.min() >= 0 and first.ids.max() < len(ADE20K_CLASSES)
    # The same as calling the transformers model by hand: logits resized bilinearly, arg-max over classes.
    model, processor = backbone.addon("ade20k_segmenter")
    assert model.config.id2label[2] == "sky" and len(model.config.id2label) == len(ADE20K_CLASSES)
    with torch.no_grad():
        logits = model(**processor(images=photo, return_tensors="pt")).logits
    resized = torch.nn.functional.interpolate(logits, size=(64, 96), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(first.ids, resized.argmax(1)[0].numpy())
    assert len(np.unique(first.ids)) >= 2  # random weights still give several classes


def test_a_photo_is_segmented_once_per_size(backbone, monkeypatch) -> None:
    import methods.core.segmenter as segmenter

    sizes = []
    compute = segmenter._segment
    monkeypatch.setattr(segmenter, "_segment", lambda b, p, size: sizes.append(size) or compute(b, p, size))
    other = make_photo(seed=11)
    first = segment_photo(backbone, other, (64, 48))
    again = segment_photo(backbone, other, (64, 48))
    smaller = segment_photo(backbone, other, (32, 32))
    assert sizes == [(64, 48), (32, 32)]
    np.testing.assert_array_equal(first.ids, again.ids)
    assert smaller.ids.shape == (32, 32)
    assert not first.ids.flags.writeable  # shared with later callers: edits must copy
    label = ADE20K_CLASSES[int(first.ids[0, 0])]
    target = "grass" if label == "water" else "water"
    assert (replace_class(first, label, target).ids != first.ids).any()


def _village(backbone) -> SegMap:
    return SegMap.from_image(example_inputs("segmentation", backbone).control_image)


def test_replace_class_changes_only_that_class(backbone) -> None:
    before = _village(backbone)
    water, grass = ADE20K_CLASSES.index("water"), ADE20K_CLASSES.index("grass")
    after = replace_class(before, "water", "grass")
    assert (before.ids == water).any() and not (after.ids == water).any()
    assert (after.ids == grass).sum() == (before.ids == grass).sum() + (before.ids == water).sum()
    untouched = before.ids != water
    np.testing.assert_array_equal(after.ids[untouched], before.ids[untouched])
    assert _palette_only(after.image)


def test_region_picks(backbone) -> None:
    segmap = _village(backbone)
    water = segmap.ids == ADE20K_CLASSES.index("water")
    np.testing.assert_array_equal(masks.as_bool(class_mask(segmap, "water")), water)
    rows, cols = np.nonzero(water)
    x, y = cols[len(cols) // 2] / (segmap.size[0] - 1), rows[len(rows) // 2] / (segmap.size[1] - 1)
    piece, name = region_at(segmap, x, y)
    piece = masks.as_bool(piece)
    assert name == "water" and piece.any() and not (piece & ~water).any()
    assert ndimage.label(piece)[1] == 1  # one connected piece
    with pytest.raises(InputError, match="no “car” region"):
        class_mask(segmap, "car")


# -- region edit ----------------------------------------------------------------------------------------
def _region_direct(backbone, inputs, grow: int) -> tuple[Image.Image, Image.Image]:
    pipe = StableDiffusionControlNetInpaintPipeline(
        **direct_components(backbone, unet=backbone.addon("inpaint_unet"), controlnet=backbone.addon("controlnet_seg"))
    )
    region = masks.dilate(inputs[MAP_REGION], grow)
    width, height = inputs.image.size
    image = pipe(
        prompt=inputs.prompt,
        image=inputs.image,
        mask_image=region,
        control_image=inputs.control_image,
        height=height,
        width=width,
        strength=1.0,
        controlnet_conditioning_scale=1.0,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]
    return image, region


def test_region_edit_equals_controlnet_inpaint_pipeline_and_keeps_the_rest(backbone) -> None:
    inputs = example_inputs("segmentation", backbone)
    raw = run_comparison(
        backbone, "segmentation", ["seg_region_edit"], inputs, SEED, params={"seg_region_edit": {"keep_outside": False}}
    ).result("seg_region_edit")
    direct, region = _region_direct(backbone, inputs, grow=4)
    assert_same_image(raw, direct)

    kept = run_comparison(backbone, "segmentation", ["seg_region_edit"], inputs, SEED).result("seg_region_edit")
    out, src, raw_px = (np.asarray(im.convert("RGB")) for im in (kept, inputs.image, raw))
    outside = ~masks.as_bool(region)
    assert 0.3 < outside.mean() < 0.95
    np.testing.assert_array_equal(out[outside], src[outside])  # exactly kept: pasted back
    np.testing.assert_array_equal(out[~outside], raw_px[~outside])  # the model's own pixels inside
    # Without the paste-back the 9-channel UNet re-synthesises the outside too (no latent blending).
    drift = np.abs(raw_px[outside].astype(np.int16) - src[outside]).mean()
    assert drift > 5.0, f"raw output kept the outside to within {drift:.1f} grey levels"


def test_region_edit_follows_the_map_inside_the_region(backbone) -> None:
    inputs = example_inputs("segmentation", backbone)
    on = run_comparison(backbone, "segmentation", ["seg_region_edit"], inputs, SEED).result("seg_region_edit")
    off = run_comparison(
        backbone,
        "segmentation",
        ["seg_region_edit"],
        inputs,
        SEED,
        params={"seg_region_edit": {"conditioning_scale": 0.0}},
    ).result("seg_region_edit")
    inside = masks.as_bool(masks.dilate(inputs[MAP_REGION], 4))
    a, b = np.asarray(on, dtype=np.int16), np.asarray(off, dtype=np.int16)
    assert np.abs(a - b)[inside].mean() > 1.0
    np.testing.assert_array_equal(a[~inside], b[~inside])


def test_empty_region_is_a_skipped_cell(backbone) -> None:
    inputs = example_inputs("segmentation", backbone)
    inputs[MAP_REGION] = Image.new("L", inputs.image.size, 0)
    record = run_comparison(backbone, "segmentation", ["seg_region_edit"], inputs, SEED).records[0]
    assert record["status"] == "skipped" and "region is empty" in record["message"]


# -- the tab's input builder ----------------------------------------------------------------------------
def _values(**override):
    from demos.segmentation import MAP_SOURCES
    from demos.slots import POSE_MODES, REGION_MODES

    values = {
        "segmap": str(ASSETS / "segmap_village.png"),
        "image": str(ASSETS / "house.png"),
        "prompt": "a village",
        "map_source": MAP_SOURCES[0],
        "region_mode": REGION_MODES[0],
        "region_class": "water",
        "region_clicks": "[]",
        "pose_mode": POSE_MODES[0],
        "keypoints": json.dumps([list(p) for p in DEFAULT_KEYPOINTS]),
        "pose_map": None,
    }
    values.update(override)
    return values


def _build(backbone, **override):
    from demos import segmentation
    from demos.common import Hub, read_inputs
    from methods.core.spec import EditInputs

    hub = Hub(backbone)
    return hub, read_inputs(hub, segmentation.TAB, _values(**override), EditInputs(steps=2))


def test_tab_builds_map_region_and_pose(backbone) -> None:
    from demos.slots import REGION_MODES

    hub, plain = _build(backbone)
    assert plain[MAP_REGION] is None and not plain.slot_values and _palette_only(plain.control_image)
    assert plain.control_image.size == plain.image.size

    _, by_class = _build(backbone, region_mode=REGION_MODES[1], region_class="water", pose_mode="keypoints")
    segmap = SegMap.from_image(by_class.control_image)
    np.testing.assert_array_equal(masks.as_bool(by_class[MAP_REGION]), segmap.ids == ADE20K_CLASSES.index("water"))
    assert_same_image(by_class[SECOND_POSE], render_pose(DEFAULT_KEYPOINTS, by_class.image.size))

    water = np.argwhere(segmap.ids == ADE20K_CLASSES.index("water"))[0]
    click = [float(water[1]) / (segmap.size[0] - 1), float(water[0]) / (segmap.size[1] - 1)]
    _, by_click = _build(backbone, region_mode=REGION_MODES[2], region_clicks=json.dumps([click]))
    expected, name = region_at(segmap, *click)
    assert name == "water"
    assert_same_image(by_click[MAP_REGION], expected)

    _, by_sam = _build(backbone, region_mode=REGION_MODES[3], region_clicks="[[0.35, 0.6]]")
    assert by_sam[MAP_REGION].size == by_sam.image.size and masks.as_bool(by_sam[MAP_REGION]).any()


def test_tab_segments_the_source_photo(backbone) -> None:
    from demos.segmentation import MAP_SOURCES

    _, inputs = _build(backbone, segmap=None, map_source=MAP_SOURCES[1])
    expected = segment_photo(backbone, inputs.image, inputs.image.size)
    assert_same_image(inputs.control_image, expected.image)
    with pytest.raises(InputError, match="segmentation map"):
        _build(backbone, segmap=None)
    with pytest.raises(InputError, match="pose map"):
        _build(backbone, pose_mode="pose map")


def test_tab_api_keeps_its_first_parameters_and_new_ones_are_optional(backbone) -> None:
    import gradio as gr

    from demos.common import Hub
    from demos.segmentation import create_demo

    with gr.Blocks() as demo:
        create_demo(Hub(backbone))
    parameters = demo.get_api_info()["named_endpoints"]["/segmentation"]["parameters"]
    names = [p["parameter_name"] for p in parameters]
    assert names[:3] == ["segmap", "image", "prompt"]
    added = names[3 : names.index("methods")]
    assert added == ["map_source", "region_mode", "region_class", "region_clicks", "pose_mode", "keypoints", "pose_map"]
    assert all(p["parameter_has_default"] for p in parameters if p["parameter_name"] in added)


def test_region_preview_tints_the_picked_region(backbone) -> None:
    from demos.common import Hub
    from demos.slots import REGION_MODES, region_preview

    hub = Hub(backbone)
    plain = region_preview(hub, _values())
    tinted = region_preview(hub, _values(region_mode=REGION_MODES[1], region_class="water"))
    assert plain.size == tinted.size and max(plain.size) >= 512  # shown at display size
    changed = np.any(np.asarray(plain) != np.asarray(tinted), axis=-1)
    photo_size = Hub(backbone).source_image(str(ASSETS / "house.png")).size
    water = SegMap.from_image(load_village(photo_size)).ids == ADE20K_CLASSES.index("water")
    shown_water = np.asarray(Image.fromarray(water).resize(plain.size, Image.Resampling.NEAREST))
    assert changed[shown_water].mean() > 0.95 and changed[~shown_water].mean() < 0.01


def load_village(size: tuple[int, int]) -> Image.Image:
    return Image.open(str(ASSETS / "segmap_village.png")).convert("RGB").resize(size, Image.Resampling.NEAREST)
