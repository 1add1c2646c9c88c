"""Segment Anything for click-to-segment masks: one loading path for the tiny and the real model, masks of
the image's size with scores, deterministic; the mask tab's click, box and "use this mask" helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam

from demos.common import Hub
from demos.mask import BACKGROUND, BOX, OBJECT, add_click, draw_prompts, parse_box, parse_points, segment
from demos.mask import selected_mask as select
from methods.core import masks, sam
from methods.core.addons import get_addon_spec
from methods.core.examples import example_inputs

TINY = sam.SamConfig(
    image_size=64,
    patch_size=16,
    encoder_embed_dim=16,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    window_size=2,
    prompt_embed_dim=16,
    mask_in_chans=4,
    decoder_depth=2,
    decoder_mlp_dim=32,
    decoder_num_heads=2,
    iou_head_hidden_dim=16,
)


def test_vit_b_config_builds_segment_anythings_own_architecture() -> None:
    """The default config is ``sam_model_registry["vit_b"]``: same parameter names and shapes, so the public
    checkpoint (a state dict for that model) loads into ``build_sam(VIT_B)`` with strict names."""
    with torch.device("meta"):
        theirs = sam_model_registry["vit_b"]().state_dict()
        ours = sam.build_sam(sam.VIT_B).state_dict()
    assert list(ours) == list(theirs) and len(ours) == 314
    assert all(ours[name].shape == theirs[name].shape for name in theirs)


def test_loader_reads_a_plain_state_dict_file(tmp_path, backbone, monkeypatch) -> None:
    """The add-on's loader (the same for real and tiny weights) reads a state dict written with the real
    architecture's names, for a tiny config, from a folder laid out like the public model repo."""
    torch.manual_seed(0)
    model = sam.build_sam(TINY)
    path = sam.save_sam(model, TINY, tmp_path, sam.VIT_B_FILE)
    assert path == tmp_path / "checkpoints" / "sam_vit_b_01ec64.pth"
    state = torch.load(path, weights_only=True)
    assert isinstance(state, dict) and "image_encoder.patch_embed.proj.weight" in state
    assert "mask_decoder.iou_prediction_head.layers.0.weight" in state

    spec = get_addon_spec("sam")
    loaded = spec.load(str(tmp_path), spec, backbone)
    assert isinstance(loaded, Sam) and loaded.image_encoder.img_size == 64
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert not any(p.requires_grad for p in loaded.parameters())
    assert sam.weights_path(str(path)) == path  # a file given directly
    # the real add-on (a model repo id) is downloaded, then read by the same code; no network here, so the
    # download is replaced by the file written above
    asked = []
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda repo, name: asked.append((repo, name)) or path)
    monkeypatch.setattr(sam, "config_beside", lambda weights: TINY)  # the real file has ViT-B beside it
    from_hub = spec.load(spec.repo, spec, backbone)
    assert asked == [("ybelkada/segment-anything", "checkpoints/sam_vit_b_01ec64.pth")]
    assert all(torch.equal(from_hub.state_dict()[k], v) for k, v in model.state_dict().items())
    monkeypatch.undo()
    assert sam.config_beside(tmp_path / "hub" / "snapshot" / "sam_vit_b_01ec64.pth") == sam.VIT_B

    del state["mask_decoder.iou_token.weight"]  # a file that does not fit the architecture fails loudly
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="iou_token"):
        sam.load_sam(path, TINY)


def test_a_click_returns_masks_of_the_image_size_with_scores_deterministically(backbone) -> None:
    image = example_inputs("mask", backbone).image.resize((128, 96))  # not square: SAM pads and crops back
    segmenter = sam.segmenter(backbone)
    assert segmenter is sam.segmenter(backbone)  # kept, with its image embedding
    assert isinstance(segmenter.sam, Sam) and segmenter.sam is backbone.addon("sam")
    first = segmenter.predict(image, [(40.0, 50.0, 1)])
    assert len(first) == 3
    for candidate in first:
        assert candidate.mask.shape == (96, 128) and candidate.mask.dtype == bool
        assert isinstance(candidate.score, float)
    again = segmenter.predict(image, [(40.0, 50.0, 1)])
    assert all(np.array_equal(a.mask, b.mask) and a.score == b.score for a, b in zip(first, again, strict=True))
    other = segmenter.predict(image, [(40.0, 50.0, 1), (100.0, 10.0, 0)], box=(10.0, 10.0, 90.0, 80.0))
    assert len(other) == 3 and not all(np.array_equal(a.mask, b.mask) for a, b in zip(first, other, strict=True))
    assert segmenter.predict(image, []) == []


def test_tab_clicks_box_and_use_this_mask(backbone) -> None:
    hub = Hub(backbone)
    photo = example_inputs("mask", backbone).image
    text, box, pending = add_click("[]", "", None, OBJECT, (0.25, 0.5))
    text, box, pending = add_click(text, box, pending, BACKGROUND, (0.9, 0.1))
    text, box, pending = add_click(text, box, pending, BOX, (0.6, 0.8))
    assert pending == (0.6, 0.8) and box == ""
    text, box, pending = add_click(text, box, pending, BOX, (0.1, 0.2))
    assert pending is None and parse_box(box, (101, 11)) == pytest.approx((10.0, 2.0, 60.0, 8.0))
    assert parse_points(text, (101, 11)) == [(25.0, 5.0, 1), (90.0, 1.0, 0)]

    candidates = segment(hub, photo, text, box)
    direct = sam.segmenter(backbone).predict(photo, parse_points(text, photo.size), parse_box(box, photo.size))
    assert [c.score for c in candidates] == [c.score for c in direct]
    best = int(np.argmax([c.score for c in candidates]))
    chosen = select(candidates, str(best), 4, 0)
    assert chosen.size == photo.size
    assert np.array_equal(masks.as_bool(chosen), masks.as_bool(masks.dilate(masks.from_bool(candidates[best].mask), 4)))
    canvas = draw_prompts(photo, text, box, chosen)
    assert canvas.size == (512, 512 * photo.height // photo.width)  # shown at display size; clicks read relative to it
    assert segment(hub, photo, "[]", "") == []
