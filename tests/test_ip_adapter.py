"""IP-Adapter through the hub equals diffusers' IP-Adapter, the reference steers it, and nothing leaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_photo
from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from PIL import Image

import methods.ip_adapter  # noqa: F401  (registers the method)
import methods.sdedit  # noqa: F401
from methods.core.backbone import Backbone
from methods.core.runner import run_comparison
from methods.core.spec import EditInputs, RunContext
from methods.ip_adapter import IPAdapter

SEED, STEPS, PROMPT = 0, 4, "a house on a meadow"


@pytest.fixture(scope="module")
def references() -> tuple[Image.Image, Image.Image]:
    return make_photo(seed=1).transpose(Image.Transpose.FLIP_LEFT_RIGHT), make_photo(seed=2).rotate(90)


def hub(backbone: Backbone, inputs: EditInputs, **params: float) -> np.ndarray:
    comparison = run_comparison(backbone, "reference", ["ip_adapter"], inputs, seed=SEED, params={"ip_adapter": params})
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    return np.asarray(comparison.result("ip_adapter"))


def assert_unet_clean(backbone: Backbone, processors: dict) -> None:
    unet = backbone.unet
    assert unet.attn_processors.keys() == processors.keys()
    assert all(unet.attn_processors[name] is processor for name, processor in processors.items())
    assert unet.encoder_hid_proj is None
    assert unet.config.encoder_hid_dim_type is None and unet.config["encoder_hid_dim_type"] is None


@pytest.mark.parametrize("with_source", [True, False], ids=["img2img", "txt2img"])
def test_equals_diffusers(backbone: Backbone, photo: Image.Image, references: tuple, with_source: bool) -> None:
    inputs = EditInputs(image=photo if with_source else None, prompt=PROMPT, reference=references[0], steps=STEPS)
    ours = hub(backbone, inputs, ip_adapter_scale=0.8, strength=0.7)
    processors = dict(backbone.unet.attn_processors)
    # The same call written against diffusers alone, inside borrowed() only (no unload: the runner's layer).
    cls = StableDiffusionImg2ImgPipeline if with_source else StableDiffusionPipeline
    pipe = cls(
        vae=backbone.vae,
        text_encoder=backbone.text_encoder,
        tokenizer=backbone.tokenizer,
        unet=backbone.unet,
        scheduler=DDIMScheduler.from_config(backbone.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=backbone.addon("ip_adapter_image_encoder"),
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    weights = backbone.addon("ip_adapter")
    extra = {"image": photo, "strength": 0.7} if with_source else {"height": 128, "width": 128}
    with backbone.borrowed():
        pipe.load_ip_adapter(
            weights.location, subfolder=weights.subfolder, weight_name=weights.weight_name, image_encoder_folder=None
        )
        pipe.set_ip_adapter_scale(0.8)
        assert backbone.unet.encoder_hid_proj is not None
        torch.manual_seed(SEED)
        reference = pipe(
            prompt=PROMPT,
            ip_adapter_image=references[0],
            num_inference_steps=STEPS,
            guidance_scale=inputs.guidance,
            generator=torch.Generator("cpu").manual_seed(SEED),
            **extra,
        ).images[0]
    assert_unet_clean(backbone, processors)  # borrowed() alone undid load_ip_adapter
    assert ours.shape == (128, 128, 3)
    assert np.array_equal(ours, np.asarray(reference))


def test_reference_steers_and_scale_zero_is_text_only(
    backbone: Backbone, photo: Image.Image, references: tuple
) -> None:
    first = hub(backbone, EditInputs(image=photo, prompt=PROMPT, reference=references[0], steps=STEPS)).astype(int)
    second = hub(backbone, EditInputs(image=photo, prompt=PROMPT, reference=references[1], steps=STEPS)).astype(int)
    # measured on the tiny backbone: max 8, mean 0.87 (0..255)
    assert np.abs(first - second).mean() > 0.3
    # lambda = 0 removes the image cross-attention: exactly SDEdit (same strength, seed, steps)
    inputs = EditInputs(image=photo, prompt=PROMPT, reference=references[0], steps=STEPS)
    off = hub(backbone, inputs, ip_adapter_scale=0.0, strength=0.6)
    text = run_comparison(backbone, "text", ["sdedit"], inputs, seed=SEED, params={"sdedit": {"strength": 0.6}})
    assert np.array_equal(off, np.asarray(text.result("sdedit")))
    assert np.abs(first - off).mean() > 1.0  # measured 6.0 at the default scale 0.6


def test_state_restored_and_no_leak(backbone: Backbone, photo: Image.Image, references: tuple) -> None:
    text_inputs = EditInputs(image=photo, prompt=PROMPT, steps=STEPS)
    before_text = run_comparison(backbone, "text", ["sdedit"], text_inputs, seed=SEED).result("sdedit")
    inputs = EditInputs(image=photo, prompt=PROMPT, reference=references[0], steps=STEPS)
    hub(backbone, inputs)  # loads the add-ons, so the fingerprint below includes them
    processors = dict(backbone.unet.attn_processors)
    fingerprint = backbone.state_fingerprint()
    hub(backbone, inputs)
    assert_unet_clean(backbone, processors)
    assert backbone.state_fingerprint() == fingerprint
    # the method run directly, inside borrowed() (the one owner of restoring) without the runner
    generator = torch.Generator("cpu").manual_seed(SEED)
    ctx = RunContext(backbone=backbone, seed=SEED, generator=generator)
    with backbone.borrowed():
        IPAdapter().run(ctx, inputs, IPAdapter.resolve_params({}))
    assert_unet_clean(backbone, processors)
    assert backbone.state_fingerprint() == fingerprint
    after_text = run_comparison(backbone, "text", ["sdedit"], text_inputs, seed=SEED).result("sdedit")
    assert np.array_equal(np.asarray(before_text), np.asarray(after_text))


def test_restored_when_the_pipeline_fails(
    backbone: Backbone, photo: Image.Image, references: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    processors = dict(backbone.unet.attn_processors)

    def explode(self: object, *args: object, **kwargs: object) -> None:
        assert backbone.unet.encoder_hid_proj is not None  # the adapter was loaded when it failed
        raise RuntimeError("boom")

    monkeypatch.setattr(StableDiffusionImg2ImgPipeline, "__call__", explode)
    ctx = RunContext(backbone=backbone, seed=SEED, generator=torch.Generator("cpu").manual_seed(SEED))
    inputs = EditInputs(image=photo, prompt=PROMPT, reference=references[0], steps=STEPS)
    with pytest.raises(RuntimeError, match="boom"), backbone.borrowed():
        IPAdapter().run(ctx, inputs, IPAdapter.resolve_params({}))
    assert_unet_clean(backbone, processors)


def test_missing_reference_is_skipped(backbone: Backbone, photo: Image.Image) -> None:
    inputs = EditInputs(image=photo, prompt=PROMPT, steps=2)
    record = run_comparison(backbone, "reference", ["ip_adapter"], inputs, seed=SEED).records[0]
    assert record["status"] == "skipped"
    assert "needs a reference image" in record["message"]
