"""The reference tab's in-depth methods: Paint-by-Example and IP-Adapter inside a mask equal their diffusers
pipelines and keep the unmasked pixels; reference-only attention is the plain pipeline when no layer
reads the reference, its self-attention keys include the reference branch's keys when layers do, and
every method puts the shared UNet's processors and hooks back, also on error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_photo
from diffusers import (
    PaintByExamplePipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)
from PIL import Image

from methods.core.backbone import Backbone
from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from methods.core.spec import EditInputs, RunContext
from methods.ip_adapter_inpaint import BASE, INPAINTING, IPAdapterInpaint
from methods.reference_only import ReferenceOnly, self_attention_layers
from tests.helpers import assert_same_image, direct_components, seeded_generator, weights_checksum

SEED = 3


def _generator() -> torch.Generator:
    return seeded_generator(SEED)


def hub(backbone: Backbone, method: str, inputs: EditInputs, **params: object) -> np.ndarray:
    comparison = run_comparison(backbone, "reference", [method], inputs, SEED, params={method: params})
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    return np.asarray(comparison.result(method))


@pytest.fixture()
def inputs(backbone: Backbone) -> EditInputs:
    return example_inputs("reference", backbone)  # house photo, pattern reference, door mask, 4 steps


def other_reference() -> Image.Image:
    return make_photo(seed=2).rotate(90)


def ctx_for(backbone: Backbone) -> RunContext:
    return RunContext(backbone=backbone, seed=SEED, generator=torch.Generator("cpu").manual_seed(SEED))


# -- Paint-by-Example -------------------------------------------------------------------------------


def _paint_by_example_direct(backbone: Backbone, inputs: EditInputs) -> Image.Image:
    encoder, processor = backbone.addon("paint_by_example_image_encoder")
    components = direct_components(
        backbone, unet=backbone.addon("paint_by_example_unet"), image_encoder=encoder, feature_extractor=processor
    )
    del components["text_encoder"], components["tokenizer"]  # the exemplar replaces the text
    pipe = PaintByExamplePipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        example_image=inputs.reference,
        image=inputs.image,
        mask_image=inputs.mask,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
    ).images[0]


def test_paint_by_example_equals_pipeline_and_keeps_unmasked_pixels(backbone: Backbone, inputs: EditInputs) -> None:
    raw = hub(backbone, "paint_by_example", inputs, keep_unmasked=False)
    direct = np.asarray(_paint_by_example_direct(backbone, inputs))
    assert_same_image(Image.fromarray(raw), Image.fromarray(direct))
    kept = hub(backbone, "paint_by_example", inputs)  # default: pasted back outside the mask
    outside = np.asarray(inputs.mask) == 0
    assert 0.5 < outside.mean() < 1.0
    np.testing.assert_array_equal(kept[outside], np.asarray(inputs.image)[outside])
    np.testing.assert_array_equal(kept[~outside], direct[~outside])
    # without the paste-back the 9-channel model re-draws the unmasked part too (VAE round trip at best)
    assert np.abs(raw[outside].astype(int) - np.asarray(inputs.image)[outside]).mean() > 1.0


def test_paint_by_example_exemplar_steers_the_masked_region(backbone: Backbone, inputs: EditInputs) -> None:
    first = hub(backbone, "paint_by_example", inputs).astype(int)
    inputs.reference = other_reference()
    second = hub(backbone, "paint_by_example", inputs).astype(int)
    inside = np.asarray(inputs.mask) > 0
    # measured on the tiny backbone: mean 1.09 (0..255) inside the mask, exactly 0 outside
    assert np.abs(first[inside] - second[inside]).mean() > 0.3
    assert np.array_equal(first[~inside], second[~inside])


@pytest.mark.parametrize("method", ["paint_by_example", "ip_adapter_inpaint"])
def test_masked_methods_need_a_mask(backbone: Backbone, inputs: EditInputs, method: str) -> None:
    inputs.mask = None
    record = run_comparison(backbone, "reference", [method], inputs, SEED).records[0]
    assert record["status"] == "skipped"
    assert "needs a mask" in record["message"]


# -- IP-Adapter inside a mask -----------------------------------------------------------------------


def assert_unets_clean(backbone: Backbone, before: dict[str, dict]) -> None:
    for unet in (backbone.unet, backbone.addon("inpaint_unet")):
        processors = before[id(unet)]
        assert all(unet.attn_processors[name] is processor for name, processor in processors.items())
        assert unet.encoder_hid_proj is None and unet.config.encoder_hid_dim_type is None


def processors_of(backbone: Backbone) -> dict[int, dict]:
    return {id(u): dict(u.attn_processors) for u in (backbone.unet, backbone.addon("inpaint_unet"))}


@pytest.mark.parametrize("unet_choice", [INPAINTING, BASE], ids=["inpaint_unet", "base_unet"])
def test_ip_adapter_inpaint_equals_pipeline(backbone: Backbone, inputs: EditInputs, unet_choice: str) -> None:
    params = {"ip_adapter_scale": 0.8, "strength": 1.0, "unet": unet_choice, "keep_unmasked": False}
    ours = hub(backbone, "ip_adapter_inpaint", inputs, **params)
    before = processors_of(backbone)
    unet = backbone.addon("inpaint_unet") if unet_choice == INPAINTING else backbone.unet
    encoder = backbone.addon("ip_adapter_image_encoder")
    pipe = StableDiffusionInpaintPipeline(**direct_components(backbone, unet=unet, image_encoder=encoder))
    pipe.set_progress_bar_config(disable=True)
    weights = backbone.addon("ip_adapter")
    with backbone.borrowed():
        pipe.load_ip_adapter(
            weights.location, subfolder=weights.subfolder, weight_name=weights.weight_name, image_encoder_folder=None
        )
        pipe.set_ip_adapter_scale(0.8)
        width, height = inputs.image.size
        direct = pipe(
            prompt=inputs.prompt,
            image=inputs.image,
            mask_image=inputs.mask,
            ip_adapter_image=inputs.reference,
            height=height,
            width=width,
            strength=1.0,
            num_inference_steps=inputs.steps,
            guidance_scale=inputs.guidance,
            generator=_generator(),
        ).images[0]
    assert_unets_clean(backbone, before)
    assert_same_image(Image.fromarray(ours), direct)
    # pasted back: exactly the source outside the mask, the model's pixels inside
    kept = hub(backbone, "ip_adapter_inpaint", inputs, **{**params, "keep_unmasked": True})
    outside = np.asarray(inputs.mask) == 0
    np.testing.assert_array_equal(kept[outside], np.asarray(inputs.image)[outside])
    np.testing.assert_array_equal(kept[~outside], np.asarray(direct)[~outside])


def test_ip_adapter_inpaint_reference_steers_and_scale_zero_is_sd_inpainting(
    backbone: Backbone, inputs: EditInputs
) -> None:
    first = hub(backbone, "ip_adapter_inpaint", inputs).astype(int)
    inputs.reference = other_reference()
    second = hub(backbone, "ip_adapter_inpaint", inputs).astype(int)
    inside = np.asarray(inputs.mask) > 0
    # measured on the tiny backbone: mean 1.97 (0..255) inside the mask
    assert np.abs(first[inside] - second[inside]).mean() > 0.5
    assert np.array_equal(first[~inside], second[~inside])
    # lambda = 0: the image cross-attention adds nothing -> exactly the mask tab's SD inpainting
    off = hub(backbone, "ip_adapter_inpaint", inputs, ip_adapter_scale=0.0)
    plain = run_comparison(backbone, "mask", ["sd_inpaint"], inputs, SEED).result("sd_inpaint")
    assert np.array_equal(off, np.asarray(plain))


def test_ip_adapter_inpaint_restores_both_unets_on_error(
    backbone: Backbone, inputs: EditInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = processors_of(backbone)
    fingerprint, weights = backbone.state_fingerprint(), weights_checksum(backbone)

    def explode(self: object, *args: object, **kwargs: object) -> None:
        assert backbone.addon("inpaint_unet").encoder_hid_proj is not None  # loaded when it failed
        raise RuntimeError("boom")

    monkeypatch.setattr(StableDiffusionInpaintPipeline, "__call__", explode)
    with pytest.raises(RuntimeError, match="boom"), backbone.borrowed():
        IPAdapterInpaint().run(ctx_for(backbone), inputs, IPAdapterInpaint.resolve_params({}))
    assert_unets_clean(backbone, before)
    assert backbone.state_fingerprint() == fingerprint and weights_checksum(backbone) == weights


# -- Reference-only attention -----------------------------------------------------------------------


class UNetCalls:
    """Counts the shared UNet's forward calls (the reference pass adds one per step)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.count = 0
        self.handle = unet.register_forward_pre_hook(self)

    def __call__(self, module: object, args: object) -> None:
        self.count += 1


@pytest.mark.parametrize("with_source", [True, False], ids=["img2img", "txt2img"])
def test_reference_only_weight_zero_equals_plain_pipeline(
    backbone: Backbone, inputs: EditInputs, with_source: bool
) -> None:
    if not with_source:
        inputs.image = None
    calls = UNetCalls(backbone.unet)
    try:
        ours = hub(backbone, "reference_only", inputs, attention_weight=0.0, strength=0.75)
    finally:
        calls.handle.remove()
    steps = int(inputs.steps * 0.75) if with_source else inputs.steps
    assert calls.count == 2 * steps  # the reference pass ran at every step; no layer read it
    cls = StableDiffusionImg2ImgPipeline if with_source else StableDiffusionPipeline
    pipe = cls(**direct_components(backbone))
    pipe.set_progress_bar_config(disable=True)
    extra = {"image": inputs.image, "strength": 0.75} if with_source else {"height": 128, "width": 128}
    direct = pipe(
        prompt=inputs.prompt,
        num_inference_steps=inputs.steps,
        guidance_scale=inputs.guidance,
        generator=_generator(),
        **extra,
    ).images[0]
    assert_same_image(Image.fromarray(ours), direct)
    on = hub(backbone, "reference_only", inputs, strength=0.75)
    # measured on the tiny backbone: mean |on - off| = 0.81 (img2img) / 0.55 (txt2img) of 255
    assert np.abs(on.astype(int) - ours.astype(int)).mean() > 0.2


def test_reference_only_reference_content_reaches_the_output(backbone: Backbone, inputs: EditInputs) -> None:
    first = hub(backbone, "reference_only", inputs).astype(int)
    inputs.reference = other_reference()
    second = hub(backbone, "reference_only", inputs).astype(int)
    # Weak on the tiny backbone, and stated as such: its random VAE gives latents of std ~0.05 (SD 1.5: ~1),
    # so once noised to the step the reference's content is a small part of the appended tokens.
    # Measured: mean 0.031 of 255 (the reference's noise draw is the same in both runs).
    assert np.abs(first - second).mean() > 0.005


class KeysSeen:
    """Records the key projections (to_k outputs) of some self-attention layers, in call order."""

    def __init__(self, backbone: Backbone, layers: list[str]) -> None:
        modules = dict(backbone.unet.named_modules())
        self.seen: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        self.handles = [
            modules[name].to_k.register_forward_hook(lambda m, a, out, n=name: self.seen[n].append(out.detach()))
            for name in layers
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def test_reference_only_self_attention_keys_include_the_reference(backbone: Backbone, inputs: EditInputs) -> None:
    order = [name.removesuffix(".processor") for name in self_attention_layers(backbone.unet)]
    # tiny UNet (widths 32, 32, 64, 64): 6 layers at 64 channels (read first: down_blocks.2, mid, up_blocks.1, as
    # SD's 1280), then 10 at 32; ties in forward order (down, mid, up)
    places = ["down_blocks"] * 2 + ["mid_block"] + ["up_blocks"] * 3 + ["down_blocks"] * 4 + ["up_blocks"] * 6
    assert [name.split(".")[0] for name in order] == places
    wide, narrow = order[0], order[-1]
    keys = KeysSeen(backbone, [wide, narrow])
    try:
        hub(backbone, "reference_only", inputs, attention_weight=0.5, strength=1.0)
    finally:
        keys.remove()
    # per step: the reference pass (write), the target pass (read; CFG batch [uncond, cond]) and, as the style
    # fidelity is 0.5, the unconditional row once more without the reference
    wide_calls, narrow_calls = keys.seen[wide], keys.seen[narrow]
    assert len(wide_calls) == 3 * inputs.steps and len(narrow_calls) == 2 * inputs.steps
    largest = 0.0
    for written, read, alone in zip(wide_calls[0::3], wide_calls[1::3], wide_calls[2::3], strict=True):
        tokens = written.shape[1]
        assert written.shape[0] == read.shape[0] == 2 and alone.shape[0] == 1
        assert read.shape[1] == 2 * tokens and alone.shape[1] == tokens  # own tokens + the reference's
        largest = max(largest, float((read[:, tokens:] - written).abs().max()))
        assert torch.allclose(read[:, tokens:], written, atol=1e-5, rtol=0)
        assert not torch.allclose(read[:, :tokens], written, atol=1e-3)  # the target's own keys differ
        assert torch.allclose(alone, read[:1, :tokens], atol=1e-5, rtol=0)
    # the weight 0.5 gates the narrow layers out: they see only their own tokens
    for written, read in zip(narrow_calls[0::2], narrow_calls[1::2], strict=True):
        assert read.shape == written.shape
    assert largest < 1e-5


def test_reference_only_style_fidelity_acts_on_the_guidance_branch(backbone: Backbone, inputs: EditInputs) -> None:
    low = hub(backbone, "reference_only", inputs, style_fidelity=0.0).astype(int)
    high = hub(backbone, "reference_only", inputs, style_fidelity=1.0).astype(int)
    assert np.abs(low - high).mean() > 0.3  # measured 1.01 of 255 on the tiny backbone
    # without classifier-free guidance there is no unconditional branch: style fidelity changes nothing
    inputs.guidance = 1.0
    low = hub(backbone, "reference_only", inputs, style_fidelity=0.0)
    high = hub(backbone, "reference_only", inputs, style_fidelity=1.0)
    assert np.array_equal(low, high)


def test_reference_only_restores_processors_and_hooks(
    backbone: Backbone, inputs: EditInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    unet = backbone.unet
    processors, hooks = dict(unet.attn_processors), dict(unet._forward_pre_hooks)
    fingerprint = backbone.state_fingerprint()
    hub(backbone, "reference_only", inputs)
    with backbone.borrowed():  # without the runner: borrowed() alone restores the processors
        ReferenceOnly().run(ctx_for(backbone), inputs, ReferenceOnly.resolve_params({}))
    assert all(unet.attn_processors[name] is processor for name, processor in processors.items())
    assert dict(unet._forward_pre_hooks) == hooks and backbone.state_fingerprint() == fingerprint

    def explode(self: object, *args: object, **kwargs: object) -> None:
        assert type(unet.attn_processors[next(iter(processors))]).__name__ == "ReferenceAttention"
        raise RuntimeError("boom")

    monkeypatch.setattr(StableDiffusionImg2ImgPipeline, "__call__", explode)
    with pytest.raises(RuntimeError, match="boom"), backbone.borrowed():
        ReferenceOnly().run(ctx_for(backbone), inputs, ReferenceOnly.resolve_params({}))
    assert all(unet.attn_processors[name] is processor for name, processor in processors.items())
    assert dict(unet._forward_pre_hooks) == hooks
