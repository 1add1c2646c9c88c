"""RegionDrag: at every copy step the target region's latent is the inverted handle region's latent of the same
level (resized when the regions differ in size), later steps are left alone; the edited branch attends through the
controller; outside the mask the photo's latent is kept; point drags become the documented squares; bad regions
are InputErrors; the shared UNet is left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import methods.region_drag as region_drag  # noqa: F401  (registers the method)
from methods.core.attention import ControlledProcessor
from methods.core.drag_regions import CycleSDE, region_cells, regions_from_drags
from methods.core.inversion import invert_image
from methods.core.latents import decode_latents, encode_image
from methods.core.runner import run_comparison
from methods.core.slots import REGIONS, Scene, _regions
from methods.core.spec import Condition, Drag, EditInputs, InputError, RegionPair, RunContext
from tests.conftest import center_mask

# handle: latent rows 5..7, cols 2..5 (3x4, outside the centre mask); target: rows 5..8, cols 8..12 (4x5, inside)
PAIR = RegionPair((16, 40, 48, 64), (64, 40, 104, 72))
PARAMS = {"start_t": 0.5, "end_t": 0.2}  # 8 steps: levels 4..1, copies before the steps at 4, 3 and 2


def region_inputs(photo, pairs=(PAIR,), drags=(), mask=True, steps=8) -> EditInputs:
    inputs = EditInputs(
        image=photo, prompt="a house", mask=center_mask(photo.size) if mask else None, drags=list(drags), steps=steps
    )
    inputs[REGIONS] = list(pairs) or None
    return inputs


def run(backbone, inputs, params=None, seed=0):
    method = region_drag.RegionDrag
    ctx = RunContext(backbone, seed, torch.Generator().manual_seed(seed))
    return method().run(ctx, inputs, method.resolve_params({**PARAMS, **(params or {})}))


def test_the_region_map_resizes_the_handle_onto_the_target() -> None:
    """Target columns 8..12 (5 cells) read handle columns 2, 3, 4, 4, 5 (4 cells) and target rows 5..8 read handle
    rows 5, 6, 6, 7 (3 cells): a nearest-neighbour resize."""
    source_rows, source_cols, target_rows, target_cols = region_cells(PAIR, 8, (16, 16))
    assert source_cols[0].tolist() == [2, 3, 4, 4, 5] and source_rows[:, 0].tolist() == [5, 6, 6, 7]
    assert target_cols[0].tolist() == [8, 9, 10, 11, 12] and target_rows[:, 0].tolist() == [5, 6, 7, 8]


@pytest.mark.parametrize("inversion", ["sde", "ddim"])
def test_copy_steps_paste_the_inverted_handle_region(backbone, photo, monkeypatch, inversion) -> None:
    """Spy on every UNet batch [inversion latent, edited latent] (8 steps, levels 4..1). Measured for both
    inversions: the source row equals the inversion's latent of the level (max difference 0.0; the cycle-SDE one
    rebuilt from the same seed); at levels 4, 3, 2 the edited target region equals the mapped handle region of
    that row exactly; at level 1 (below end_t) it does not (mean difference 0.47 cycle-SDE, 0.19 DDIM); every
    attention layer runs through the controller; the final latent outside the mask is the photo's exactly (max
    difference 0.0)."""
    batches: list[torch.Tensor] = []
    processors: list[bool] = []
    decoded: list[torch.Tensor] = []
    predict = region_drag.predict_noise

    def spy_predict(backbone, latents, *args, **kwargs):
        batches.append(latents.clone())
        processors.append(all(isinstance(p, ControlledProcessor) for p in backbone.unet.attn_processors.values()))
        return predict(backbone, latents, *args, **kwargs)

    monkeypatch.setattr(region_drag, "predict_noise", spy_predict)
    monkeypatch.setattr(region_drag, "decode_latents", lambda b, z: (decoded.append(z), decode_latents(b, z))[1])
    state = backbone.state_fingerprint()
    output = run(backbone, region_inputs(photo), {"inversion": inversion})

    x0 = encode_image(backbone, photo)
    if inversion == "sde":
        trajectory = CycleSDE.on(backbone, 8, 4).forward(x0, torch.Generator().manual_seed(0))
    else:
        trajectory = list(invert_image(backbone, photo, "a house", 8, 1.0, stop_at=4).trajectory)
    sr, sc, tr, tc = region_cells(PAIR, 8, (16, 16))
    assert len(batches) == 4 and all(processors) and output.info["copy_steps"] == 3
    for batch, level in zip(batches, [4, 3, 2, 1], strict=True):
        assert torch.equal(batch[0:1], trajectory[level])
        copied = batch[1][..., tr, tc], batch[0][..., sr, sc]
        assert torch.equal(*copied) if level >= 2 else float((copied[0] - copied[1]).abs().mean()) > 0.01
    outside = torch.from_numpy(np.asarray(center_mask(photo.size)).reshape(16, 8, 16, 8).max(axis=(1, 3)) == 0)
    assert torch.equal(decoded[0][..., outside], x0[..., outside])
    assert output.extras[0][1] == "moved regions" and output.image.size == photo.size
    assert backbone.state_fingerprint() == state
    assert not any(module._forward_hooks for module in backbone.unet.modules())
    assert not any(p.requires_grad for p in backbone.unet.parameters())


def test_point_drags_become_the_documented_squares(backbone, photo, monkeypatch) -> None:
    """Half side max(8, 128 // 6) = 21 px around handle and target, clipped to the image; the slot's example drag
    gives the slot's example regions; given regions win over drags."""
    drags = [Drag((60, 80), (70, 80)), Drag((5, 120), (30, 100))]
    assert regions_from_drags(drags, (128, 128)) == [
        RegionPair((39, 59, 81, 101), (49, 59, 91, 101)),
        RegionPair((0, 99, 26, 128), (9, 79, 51, 121)),
    ]
    example = Drag((int(128 * 0.35), int(128 * 0.55)), (int(128 * 0.55), int(128 * 0.55)))
    assert regions_from_drags([example], (128, 128)) == _regions(Scene(backbone, Condition.DRAG, (128, 128)))

    used: list[RegionPair] = []
    cells = region_drag.region_cells
    monkeypatch.setattr(region_drag, "region_cells", lambda pair, *a: (used.append(pair), cells(pair, *a))[1])
    output = run(backbone, region_inputs(photo, pairs=(), drags=drags, steps=4))
    assert output.info["regions_from"] == "drag points" and used == regions_from_drags(drags, (128, 128))
    used.clear()
    assert run(backbone, region_inputs(photo, drags=drags, steps=4)).info["regions_from"] == "region pairs"
    assert used == [PAIR]


@pytest.mark.parametrize(
    ("pairs", "drags", "message"),
    [
        ((), (), "at least one handle region"),
        ((RegionPair((10, 10, 10, 30), (40, 10, 60, 30)),), (), "has no area"),
        ((RegionPair((10, 10, 30, 30), (40, 30, 60, 10)),), (), "target region .* has no area"),
        ((RegionPair((10, 10, 30, 30), (110, 10, 140, 30)),), (), "outside the 128x128 image"),
        ((RegionPair((-4, 10, 30, 30), (40, 10, 60, 30)),), (), "outside"),
        ((RegionPair((10, 10, 30, 30), (10, 10, 30, 30)),), (), "is its handle region"),
        (tuple(RegionPair((i, 0, i + 8, 8), (i, 20, i + 8, 28)) for i in range(17)), (), "At most 16 region pairs"),
        ((), (Drag((60, 80), (140, 60)),), "outside the 128x128 image"),
        ((), (Drag((60, 80), (60, 80)),), "ends where it starts"),
    ],
)
def test_unusable_regions_are_input_errors(backbone, photo, pairs, drags, message) -> None:
    with pytest.raises(InputError, match=message):
        run(backbone, region_inputs(photo, pairs=pairs, drags=drags, steps=4))


def test_empty_mask_is_an_input_error(backbone, photo) -> None:
    inputs = region_inputs(photo, steps=4)
    inputs.mask = inputs.mask.point(lambda v: 0)
    with pytest.raises(InputError, match="mask is empty"):
        run(backbone, inputs)


def test_through_the_runner(backbone, photo) -> None:
    """Defaults (cycle-SDE), no mask, two region pairs of different sizes, as the tab runs it; nothing to move is a
    skipped cell with the sentence."""
    inputs = region_inputs(photo, pairs=(PAIR, RegionPair((80, 10, 100, 30), (90, 20, 120, 60))), mask=False, steps=4)
    comparison = run_comparison(backbone, "drag", ["region_drag"], inputs, seed=0)
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    assert record["info"]["pairs"] == 2 and comparison.result("region_drag").size == photo.size
    skipped = run_comparison(backbone, "drag", ["region_drag"], region_inputs(photo, pairs=()), seed=0).records[0]
    assert skipped["status"] == "skipped" and "handle region" in skipped["message"]
