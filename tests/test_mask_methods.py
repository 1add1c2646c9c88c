"""Fidelity of the mask tab's methods on the tiny backbone: Blended Latent Diffusion, SDEdit inside the mask,
RePaint on latents, and the two outpainting methods; the mask helpers; the tab without a mask.

What is checked, and how strongly (tiny random weights):
* the pipeline-based methods equal a direct ``StableDiffusionInpaintPipeline`` call (same seed), exactly;
* latent level: the final latent outside the latent-grid mask equals the source's latent, exactly;
* pixel level: the random tiny VAE decoder spreads a latent change over the whole picture (its mid block
  attends globally), so without paste-back nothing outside the mask is exact; measured below, the change
  decays with the distance from the mask. With the paste-back (the default), every pixel outside the
  (dilated) mask equals the source exactly;
* outpainting keeps the original pixels exactly and returns the extended size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import RePaintScheduler, StableDiffusionInpaintPipeline
from PIL import Image
from scipy import ndimage

from demos.common import Hub
from demos.mask import build_inputs, condition_cell
from methods.core import masks
from methods.core.examples import ASSETS, example_inputs
from methods.core.registry import get_method, list_methods
from methods.core.runner import run_comparison
from methods.core.slots import MASK
from methods.core.spec import EditInputs, RunContext
from methods.outpaint import extend_canvas, padding
from methods.repaint import repaint_latents
from tests.helpers import assert_same_image, direct_components, seeded_generator

SEED = 7
MASKED = ["blended_latent", "masked_sdedit", "repaint"]
OUTPAINT = ["outpaint_inpaint_unet", "outpaint_blended"]


def _generator() -> torch.Generator:
    return seeded_generator(SEED)


@pytest.fixture(scope="module")
def inputs(backbone) -> EditInputs:
    return example_inputs("mask", backbone)


def _pipe(backbone, unet=None) -> StableDiffusionInpaintPipeline:
    pipe = StableDiffusionInpaintPipeline(**direct_components(backbone, **({"unet": unet} if unet else {})))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _direct(backbone, image: Image.Image, mask: Image.Image, prompt: str, strength: float, unet=None, **kw):
    return _pipe(backbone, unet)(
        prompt=prompt,
        image=image,
        mask_image=mask,
        height=image.height,
        width=image.width,
        strength=strength,
        num_inference_steps=4,
        guidance_scale=7.5,
        generator=_generator(),
        **kw,
    ).images


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# -- mask helpers ----------------------------------------------------------------------------------------
def test_mask_helpers(backbone) -> None:
    dot = np.zeros((21, 21), dtype=bool)
    dot[10, 10] = True
    grown = masks.as_bool(masks.dilate(masks.from_bool(dot), 3))
    assert grown.sum() == 29  # lattice points within a Euclidean disc of radius 3
    assert np.array_equal(masks.as_bool(masks.dilate(masks.from_bool(dot), 0)), dot)

    square = np.zeros((40, 40), dtype=bool)
    square[8:32, 8:32] = True
    alpha = np.asarray(masks.feather(masks.from_bool(square), 6))
    assert alpha[~square].max() == 0  # the ramp lies inside: nothing outside the mask is touched
    assert alpha[14:26, 14:26].min() == 255 and 0 < alpha[8, 20] < 255

    holey = square.copy()
    holey[20, 20] = False  # a pinhole
    holey[2, 2] = True  # a speck
    smoothed = masks.as_bool(masks.smooth(masks.from_bool(holey), 1.5))
    assert smoothed[20, 20] and not smoothed[2, 2]

    source, result = Image.new("RGB", (40, 40), (10, 20, 30)), Image.new("RGB", (40, 40), (200, 100, 50))
    pasted = _array(masks.paste_back(source, result, masks.from_bool(square), 6))
    assert (pasted[~square] == (10, 20, 30)).all() and (pasted[14:26, 14:26] == (200, 100, 50)).all()

    # the latent-grid mask is the inpainting pipeline's own (binarise, nearest downsampling)
    mask = masks.dilate(example_inputs("mask", backbone).mask, 8)
    pipe = _pipe(backbone)
    theirs = torch.nn.functional.interpolate(pipe.mask_processor.preprocess(mask), size=(12, 16))
    assert torch.equal(masks.latent_mask(mask, (12, 16)), theirs)


# -- Blended Latent Diffusion and SDEdit inside the mask: the inpainting pipeline with the base UNet --------
def test_blended_latent_equals_inpaint_pipeline_with_base_unet(backbone, inputs) -> None:
    raw = run_comparison(
        backbone, "mask", ["blended_latent"], inputs, SEED, params={"blended_latent": {"keep_background": False}}
    ).result("blended_latent")
    mask = masks.dilate(inputs.mask, 8)
    direct = _direct(backbone, inputs.image, mask, inputs.prompt, 1.0)[0]
    assert_same_image(raw, direct)
    kept = run_comparison(backbone, "mask", ["blended_latent"], inputs, SEED).result("blended_latent")
    assert_same_image(kept, masks.paste_back(inputs.image, direct, mask, 4.0))


def test_masked_sdedit_equals_inpaint_pipeline_below_full_strength(backbone, inputs) -> None:
    params = {"strength": 0.6, "dilate": 0.0, "keep_background": False}
    hub = run_comparison(backbone, "mask", ["masked_sdedit"], inputs, SEED, params={"masked_sdedit": params})
    assert_same_image(hub.result("masked_sdedit"), _direct(backbone, inputs.image, inputs.mask, inputs.prompt, 0.6)[0])
    other = run_comparison(
        backbone, "mask", ["masked_sdedit"], inputs, SEED, params={"masked_sdedit": {**params, "strength": 0.9}}
    )
    assert not np.array_equal(_array(other.result("masked_sdedit")), _array(hub.result("masked_sdedit")))


@pytest.mark.parametrize("strength", [1.0, 0.6])  # Blended Latent Diffusion, SDEdit inside the mask
def test_latent_blending_keeps_the_source_latent_outside_the_mask(backbone, inputs, strength: float) -> None:
    mask = masks.dilate(inputs.mask, 8)
    pipe = _pipe(backbone)
    latents = _direct(backbone, inputs.image, mask, inputs.prompt, strength, output_type="latent")
    # the source latent exactly as the pipeline draws it (first use of the generator)
    source = pipe._encode_vae_image(pipe.image_processor.preprocess(inputs.image), generator=_generator())
    outside = (masks.latent_mask(mask, tuple(latents.shape[-2:])) == 0).expand_as(latents)
    assert 0.5 < outside.float().mean() < 0.98
    assert torch.equal(latents[outside], source[outside])  # exact, not approximately
    assert (latents - source)[~outside].abs().mean() > 0.1  # the masked region was generated

    # Pixels: decode(final) against the VAE round trip decode(source). Measured (strength 1.0 / 0.6):
    # mean |difference| 71 / 71 (of 255) inside the mask, 53 / 49 within 8 px of it, 22 / 21 beyond 32 px,
    # with maxima above 100 everywhere: the random decoder spreads the change, decaying with distance.
    with torch.no_grad():
        decoded = [
            pipe.image_processor.postprocess(pipe.vae.decode(z / pipe.vae.config.scaling_factor)[0], "np")[0] * 255
            for z in (latents, source)
        ]
    change = np.abs(decoded[0] - decoded[1]).mean(-1)
    region = masks.as_bool(mask)
    distance = ndimage.distance_transform_edt(~region)
    inside, far = change[region].mean(), change[distance > 32].mean()
    assert far < 0.5 * inside, (inside, far)


@pytest.mark.parametrize("name", MASKED)
def test_masked_methods_keep_every_pixel_outside_the_dilated_mask(backbone, inputs, name: str) -> None:
    method = get_method(name)
    defaults = method.resolve_params(None)
    kept = _array(run_comparison(backbone, "mask", [name], inputs, SEED).result(name))
    raw = run_comparison(backbone, "mask", [name], inputs, SEED, params={name: {"keep_background": False}})
    raw = _array(raw.result(name))
    source = _array(inputs.image)
    region = masks.as_bool(masks.dilate(inputs.mask, defaults["dilate"]))
    assert (kept[~region] == source[~region]).all()  # outside the (dilated) mask: the source, exactly
    core = np.asarray(masks.feather(masks.from_bool(region), defaults["feather"])) == 255
    assert core.sum() > 100
    assert (kept[core] == raw[core]).all()  # inside, past the feathered seam: the method's own pixels
    assert np.abs(kept[core] - source[core]).mean() > 5  # ... which are an edit, not the source


# -- RePaint on latents ------------------------------------------------------------------------------------
def _repaint(backbone, inputs, mask, **kw):
    generator = torch.Generator("cpu").manual_seed(SEED)
    ctx = RunContext(backbone=backbone, seed=SEED, generator=generator)
    called: list[int] = []
    hook = backbone.unet.register_forward_pre_hook(lambda module, args: called.append(int(args[1])))
    try:
        run = repaint_latents(ctx, inputs.image, mask, inputs.prompt, "", 4, 7.5, eta=0.0, **kw)
    finally:
        hook.remove()
    return run, called


def test_repaint_resamples_on_the_jump_schedule_and_keeps_the_known_latent(backbone, inputs) -> None:
    mask = masks.dilate(inputs.mask, 8)
    run, called = _repaint(backbone, inputs, mask, jump_length=2, resamples=3)
    # the schedule is diffusers' RePaint schedule: down 2, back up 2 (re-noising), twice more, then down
    expected = RePaintScheduler.from_config(backbone.scheduler.config)
    expected.set_timesteps(4, jump_length=2, jump_n_sample=3)
    assert run.timesteps == [int(t) for t in expected.timesteps]
    downs = [t for i, t in enumerate(run.timesteps) if i == 0 or t < run.timesteps[i - 1]]
    ups = [t for i, t in enumerate(run.timesteps) if i > 0 and t > run.timesteps[i - 1]]
    assert len(ups) == 4  # (resamples - 1) jumps of jump_length steps back up the chain
    assert called == downs and run.model_calls == len(downs) == 8  # the UNet runs on every step down only
    known = (run.known == 1).expand_as(run.latents)
    assert 0.5 < known.float().mean() < 0.98
    assert torch.equal(run.latents[known], run.source[known])  # the last step lands on the source exactly

    single, called_once = _repaint(backbone, inputs, mask, jump_length=2, resamples=1)
    assert called_once == [750, 500, 250, 0] and single.model_calls == 4
    assert (single.latents - run.latents)[~known].abs().mean() > 0.01  # resampling changes the generated part
    capped, _ = _repaint(backbone, inputs, mask, jump_length=9, resamples=2)
    assert capped.jump_length == 3  # a jump cannot climb past the start of a 4-step chain


# -- outpainting ---------------------------------------------------------------------------------------------
def test_extend_canvas_and_padding(backbone, inputs) -> None:
    image = inputs.image.resize((128, 96))
    params = {"left": 0.1, "right": 0.0, "top": 0.5, "bottom": 0.25}
    pads = padding(image.size, params, 16)
    assert pads == (16, 0, 48, 32)  # 12.8 px -> one stride of 16; 48 px; 24 px -> 32 (half a stride rounds up)
    assert get_method("outpaint_blended").output_size(image.size, params, 16) == (144, 176)
    for fill in ("edge", "reflect", "mean", "noise"):
        canvas, mask = extend_canvas(image, pads, fill, seed=3)
        assert canvas.size == mask.size == (144, 176)
        inner = (slice(48, 48 + 96), slice(16, 16 + 128))
        assert (_array(canvas)[inner] == _array(image)).all()
        region = np.asarray(mask) == 255
        assert not region[inner].any() and region.sum() == 144 * 176 - 128 * 96
    edge, _ = extend_canvas(image, pads, "edge")
    assert (_array(edge)[:48, 16] == _array(image)[0, 0]).all()
    noise_a, noise_b = extend_canvas(image, pads, "noise", 3)[0], extend_canvas(image, pads, "noise", 3)[0]
    assert_same_image(noise_a, noise_b)


@pytest.mark.parametrize("name", OUTPAINT)
def test_outpainting_equals_pipeline_and_keeps_the_original_exactly(backbone, inputs, name: str) -> None:
    params = {"left": 0.25, "right": 0.0, "top": 0.0, "bottom": 0.5}
    hub = run_comparison(backbone, "mask", [name], inputs, SEED, params={name: params})
    result = hub.result(name)
    resolved = get_method(name).resolve_params(params)
    stride = backbone.size_multiple  # 64: a quarter of 128 px is half a stride, rounded up to one
    assert result.size == get_method(name).output_size(inputs.image.size, resolved, stride) == (192, 192)
    assert (_array(result)[0:128, 64:192] == _array(inputs.image)).all()  # the original, exactly

    canvas, mask = extend_canvas(inputs.image, padding(inputs.image.size, resolved, stride), "edge", SEED)
    unet = backbone.addon("inpaint_unet") if name == "outpaint_inpaint_unet" else None
    direct = _direct(backbone, canvas, mask, inputs.prompt, 1.0, unet=unet)[0]
    direct.paste(inputs.image, (64, 0))
    assert_same_image(result, direct)
    new = np.asarray(mask) == 255
    assert np.abs(_array(result)[new] - _array(canvas)[new]).mean() > 5  # generated, not the edge fill


def test_outpainting_without_any_extension_is_a_skipped_cell(backbone, inputs) -> None:
    zero = {"left": 0.0, "right": 0.05, "top": 0.0, "bottom": 0.0}  # 6.4 px rounds to no stride at all
    hub = run_comparison(backbone, "mask", ["outpaint_blended"], inputs, SEED, params={"outpaint_blended": zero})
    assert hub.records[0]["status"] == "skipped" and "extend the canvas" in hub.records[0]["message"]


# -- the tab without a mask -----------------------------------------------------------------------------------
def _no_mask_inputs(backbone) -> EditInputs:
    values = {
        "image": str(ASSETS / "house.png"),
        "mask_drawing": None,
        "mask_image": None,
        "prompt": "a house on a wide meadow",
        "negative_prompt": "",
    }
    return build_inputs(Hub(backbone), values, EditInputs(steps=2))


def test_mask_tab_without_a_mask_outpaints_and_skips_the_rest(backbone) -> None:
    inputs = _no_mask_inputs(backbone)
    assert inputs.mask is None
    names = [m.name for m in list_methods("mask")]
    assert set(OUTPAINT + MASKED + ["sd_inpaint"]) <= set(names)
    hub = run_comparison(backbone, "mask", names, inputs, SEED)
    status = {r["method"]: (r["status"], r["message"]) for r in hub.records}
    for name in names:
        if MASK in get_method(name).requires:
            assert status[name][0] == "skipped" and "needs a mask" in status[name][1], status[name]
        else:
            assert status[name] == ("ok", ""), status[name]


def test_condition_cell_without_a_mask(backbone) -> None:
    inputs = _no_mask_inputs(backbone)
    picture, caption = condition_cell(Hub(backbone), inputs)
    assert picture.size == inputs.image.size and "no mask" in caption.lower()
