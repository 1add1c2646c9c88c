"""Universal guidance (forward guidance by an off-the-shelf ImageNet classifier) on DiT, on the tiny backbone."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

import methods.classifier_guidance_dit  # noqa: F401  (registers the method)
from methods.classifier_guidance_dit import ClassifierObjective, guided_eps, guided_sample
from methods.core import fullsize
from methods.core.addons import get_addon_spec
from methods.core.guidance import decode_pixels
from methods.core.images import square_image
from methods.core.latents import encode_image
from methods.core.runner import run_comparison
from methods.core.spec import EditInputs
from methods.ddib_dit import ddim_invert, ddim_sample, predict_eps

TABBY, GOLDFISH = 281, 1
NAME = "classifier_guidance_dit"


def _setup(backbone, photo):
    transformer, scheduler = backbone.addon("dit")
    objective = ClassifierObjective(*backbone.addon("imagenet_classifier"))
    size = transformer.config.sample_size * backbone.vae_scale_factor
    return transformer, scheduler, objective, encode_image(backbone, square_image(photo, size))


def test_the_classifier_is_imagenet_1k_and_sees_what_its_processor_would(backbone, photo):
    """The torch preprocessing (bicubic resize to 32 / 0.875 = 36, centre crop 32, ImageNet mean / std) matches the
    saved image processor run on the PIL image: measured max 0.020, mean 0.0046 on normalised values of std 1.07,
    log p(goldfish) -8.3770 (processor) vs -8.3758 (torch)."""
    model, processor = backbone.addon("imagenet_classifier")
    assert model.config.num_labels == 1000 and model.config.id2label[TABBY] == "tabby"
    assert model.dtype == torch.float32 and not any(p.requires_grad for p in model.parameters())
    objective = ClassifierObjective(model, processor)
    reference = processor(images=photo, return_tensors="pt")["pixel_values"]
    ours = objective.preprocess(backbone.base.image_processor.preprocess(photo))
    assert ours.shape == reference.shape == (1, 3, 32, 32)
    assert float((ours - reference).abs().max()) < 0.05 and float((ours - reference).abs().mean()) < 0.01
    with torch.no_grad():
        expected = model(pixel_values=reference).logits.log_softmax(-1)[0, GOLDFISH]
        got = objective.log_probs(backbone.base.image_processor.preprocess(photo))[0, GOLDFISH]
    assert abs(float(expected - got)) < 0.01


def test_one_guided_step_raises_log_p_of_the_target(backbone, photo):
    """From the same z_t (5 of 10 steps inverted under tabby), the guided ε̂ gives an x̂0 that the classifier finds
    more goldfish-like than the unguided ε's. Measured log p(goldfish | D(x̂0)): unguided -8.006, s = 1: -7.951,
    s = 10: -7.858 (at s = 100 the first-order step overshoots: -8.58)."""
    transformer, scheduler, objective, x0 = _setup(backbone, photo)
    steps, levels = 10, 5
    z_t = ddim_invert(transformer, scheduler.config, x0, TABBY, steps, levels=levels)
    sampler = DDIMScheduler.from_config(scheduler.config, clip_sample=False)
    sampler.set_timesteps(steps)
    t = sampler.timesteps[steps - levels]
    alpha = sampler.alphas_cumprod[t]

    def log_p(eps: torch.Tensor) -> float:
        x0_hat = sampler.step(eps, t, z_t, eta=0.0).pred_original_sample
        with torch.no_grad():
            return float(objective.log_probs(decode_pixels(backbone.vae, x0_hat))[0, GOLDFISH])

    with torch.no_grad():
        eps = predict_eps(transformer, z_t, t, GOLDFISH)
    unguided = log_p(eps)
    guided = {}
    for scale in (1.0, 10.0):
        eps_hat, at_z_t = guided_eps(transformer, backbone.vae, objective, z_t, t, alpha, GOLDFISH, scale)
        assert abs(float(at_z_t[0]) - unguided) < 1e-4  # the gradient is taken at the unguided x̂0
        guided[scale] = log_p(eps_hat)
    assert unguided < guided[1.0] < guided[10.0], (unguided, guided)
    assert guided[10.0] - unguided > 0.05, (unguided, guided)


def test_scale_zero_is_the_unguided_sampler_bit_for_bit(backbone, photo):
    """No classifier (s = 0): the partial inversion at strength 1 is ddib_dit's ddim_invert and the sampler is its
    ddim_sample, bit for bit; through the registry the method then gives DDIB's very image."""
    transformer, scheduler, objective, x0 = _setup(backbone, photo)
    steps, guidance = 4, 1.5
    x_t = ddim_invert(transformer, scheduler.config, x0, TABBY, steps)
    assert torch.equal(ddim_invert(transformer, scheduler.config, x0, TABBY, steps, levels=steps), x_t)
    ours = guided_sample(
        transformer, scheduler.config, backbone.vae, objective, x_t, GOLDFISH, steps, steps, 0.0, guidance
    )
    assert torch.equal(ours, ddim_sample(transformer, scheduler.config, x_t, GOLDFISH, steps, guidance))
    inputs = EditInputs(image=photo, source_class=TABBY, target_class=GOLDFISH, steps=steps)
    params = {NAME: {"scale": 0.0, "strength": 1.0, "guidance": guidance}, "ddib_dit": {"guidance": guidance}}
    comparison = run_comparison(backbone, "class", [NAME, "ddib_dit"], inputs, seed=0, params=params)
    assert [r["status"] for r in comparison.records] == ["ok", "ok"], comparison.records
    np.testing.assert_array_equal(np.asarray(comparison.result(NAME)), np.asarray(comparison.result("ddib_dit")))


def _weights(modules: dict[str, torch.nn.Module]) -> dict[str, tuple[torch.Tensor, bool]]:
    return {
        f"{name}.{key}": (param.detach().clone(), param.requires_grad)
        for name, module in modules.items()
        for key, param in module.named_parameters()
    }


def test_a_run_is_an_ok_cell_and_leaves_every_weight_as_it_was(backbone, photo):
    transformer, _ = backbone.addon("dit")
    classifier, _ = backbone.addon("imagenet_classifier")
    modules = {"unet": backbone.unet, "vae": backbone.vae, "dit": transformer, "classifier": classifier}
    before, fingerprint = _weights(modules), backbone.state_fingerprint()
    wide = photo.resize((160, 128))  # not square: centre-cropped to DiT's square size
    inputs = EditInputs(image=wide, source_class=TABBY, target_class=GOLDFISH, steps=4)
    params = {NAME: {"recurrence": 2}}  # default scale and strength, plus one self-recurrence repeat
    record = run_comparison(backbone, "class", [NAME], inputs, seed=0, params=params).records[0]
    assert record["status"] == "ok", record["message"]
    comparison = run_comparison(backbone, "class", [NAME], inputs, seed=0, params=params)
    assert comparison.records[0]["info"] == record["info"]  # seeded: the re-noising repeats are reproducible
    assert comparison.result(NAME).size == (128, 128)
    info = record["info"]
    assert info["target"] == "1 goldfish" and "→" in info["log p(target) photo → result"]
    after = _weights(modules)
    assert after.keys() == before.keys()
    for key, (value, flag) in before.items():
        assert torch.equal(after[key][0], value) and after[key][1] == flag, key
    assert backbone.state_fingerprint() == fingerprint


@pytest.mark.parametrize(
    ("source", "target", "params", "text"),
    [
        ("tabby kat", GOLDFISH, {}, "tabby"),
        (TABBY, 1000, {}, "0 to 999"),
        (None, GOLDFISH, {}, "source class"),
        (TABBY, GOLDFISH, {"strength": 1.5}, "between"),
    ],
)
def test_bad_input_is_skipped_with_a_sentence(backbone, photo, source, target, params, text):
    inputs = EditInputs(image=photo, source_class=source, target_class=target, steps=2)
    record = run_comparison(backbone, "class", [NAME], inputs, seed=0, params={NAME: params}).records[0]
    assert record["status"] == "skipped" and text in record["message"], record
    assert record["message"].endswith("."), record["message"]


def test_full_builder_writes_microsoft_resnet_50_that_its_loader_reads(tmp_path: Path, monkeypatch) -> None:
    """``build-full --only imagenet_classifier``: ResNet-50's 25 557 032 parameters (the real model's count) in
    microsoft/resnet-50's hub layout, read back by the spec's loader in float32 with its 224 px processor."""
    spec = get_addon_spec("imagenet_classifier")
    assert spec.repo == "microsoft/resnet-50" and spec.licence == "Apache 2.0" and not spec.non_commercial
    assert fullsize.main(["--only", "imagenet_classifier", "--cache-dir", str(tmp_path)]) == 0
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    stand_in = SimpleNamespace(device=torch.device("cpu"), dtype=torch.float16, variant=lambda s: s.variant)
    model, processor = spec.load(spec.repo, spec, stand_in)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    assert model.dtype == torch.float32 and model.config.id2label[GOLDFISH] == "goldfish"
    objective = ClassifierObjective(model, processor)
    assert (objective.crop, objective.resize) == (224, 256)
    with torch.no_grad():
        log_p = objective.log_probs(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert log_p.shape == (1, 1000) and torch.isfinite(log_p).all()


def test_objective_gradient_survives_float16_and_refuses_non_finite(caplog) -> None:
    from methods.core.guidance import objective_gradient

    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    a = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)).half()
    w = a.float() * 1e-6  # the true gradient: ~1e-6 per value, as log p's through a decoder

    def through_half(x: torch.Tensor) -> torch.Tensor:  # a float16 network on the path
        return ((x.half() * a).sum() * 1e-6).float()

    _, plain = objective_gradient(through_half, z, half=False)
    _, scaled = objective_gradient(through_half, z, half=True)
    error = lambda g: float((g - w).abs().max() / w.abs().max())  # noqa: E731
    assert error(scaled) < 1e-3 < error(plain)  # unscaled, float16 keeps ~1e-6 as coarse subnormals
    value, gradient = objective_gradient(lambda x: (x * float("inf")).sum(), z, half=False, what="test")
    assert torch.equal(gradient, torch.zeros_like(z)) and "left unguided" in caplog.text
