"""DDIB on DiT: the bridge is an ODE round trip (cycle-consistent up to discretisation error)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

import methods.ddib_dit  # noqa: F401  (registers the method)
from methods.core.imagenet import class_index, class_names
from methods.core.images import square_image
from methods.core.latents import decode_latents, encode_image
from methods.core.runner import run_comparison
from methods.core.spec import EditInputs, InputError
from methods.ddib_dit import ddim_invert, ddim_sample

TABBY, GOLDFISH = 281, 1


def _setup(backbone, photo):
    transformer, scheduler = backbone.addon("dit")
    size = transformer.config.sample_size * backbone.vae_scale_factor
    return transformer, scheduler, encode_image(backbone, square_image(photo, size))


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm())


def test_imagenet_names():
    names = class_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[TABBY] == "tabby" and names[GOLDFISH] == "goldfish"
    assert class_index("Tabby") == class_index("281") == class_index("281 tabby") == class_index(281) == TABBY
    with pytest.raises(InputError, match="tabby"):
        class_index("tabby kat")  # the message lists close names
    for bad in (1000, -1, "281 goldfish"):
        with pytest.raises(InputError):
            class_index(bad)


class GaussianClassDiT(torch.nn.Module):
    """A stand-in with DiT's call signature and the *exact* noise prediction for Gaussian classes.

    Class c's data is N(mean_c, std^2 I), so E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mean_c) / (a std^2 + 1 - a)
    with a = alpha_bar_t. Like DiT it returns 8 channels: eps, then (here: junk) learned-variance channels.
    """

    def __init__(self, scheduler_config, means: dict[int, torch.Tensor], std: float) -> None:
        super().__init__()
        self.config = SimpleNamespace(in_channels=4, out_channels=8)
        self.alphas = DDIMScheduler.from_config(scheduler_config).alphas_cumprod
        self.means, self.std = means, std

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor) -> SimpleNamespace:
        a = self.alphas[timestep.long()].view(-1, 1, 1, 1)
        mean = torch.stack([self.means[int(c)] for c in class_labels])
        eps = (1 - a).sqrt() * (sample - a.sqrt() * mean) / (a * self.std**2 + 1 - a)
        return SimpleNamespace(sample=torch.cat([eps, torch.full_like(eps, 1e3)], dim=1))


def test_bridge_with_exact_scores_is_cycle_consistent_and_transports_between_classes():
    """With exact scores, DDIB's two ODE halves reconstruct (A -> A) and map A onto B by optimal transport.

    For two Gaussian classes of equal variance the probability-flow ODE keeps (x_t - sqrt(a) mean) / sigma_t
    fixed, so the bridge moves x_0 by mean_B - mean_A (the optimal-transport map), up to a term of size
    sqrt(alpha_bar_T) at the last noise level, and up to DDIM's discretisation error. Measured (std 1,
    unit-variance means): round trip 19.9% of |x_0| at 10 steps, 5.3% at 50; transport error 5.1% of
    |mean_B - mean_A| at 50 steps.
    """
    scheduler_config = DDIMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False).config
    generator = torch.Generator().manual_seed(0)
    means = {c: torch.randn(4, 16, 16, generator=generator) for c in (TABBY, GOLDFISH)}
    model = GaussianClassDiT(scheduler_config, means, std=1.0)
    x0 = (means[TABBY] + torch.randn(4, 16, 16, generator=generator))[None]
    shift = means[GOLDFISH] - means[TABBY]
    errors = {}
    for steps in (10, 50):
        x_t = ddim_invert(model, scheduler_config, x0, TABBY, steps)
        back = ddim_sample(model, scheduler_config, x_t, TABBY, steps)
        moved = ddim_sample(model, scheduler_config, x_t, GOLDFISH, steps)
        a_top = model.alphas[scheduler_config.num_train_timesteps - scheduler_config.num_train_timesteps // steps]
        transport = x0 + shift - a_top.sqrt() * shift  # the continuous ODE's exact answer (std 1: sigma_t = 1)
        errors[steps] = (_distance(back, x0) / float(x0.norm()), _distance(moved, transport) / float(shift.norm()))
    assert errors[10][0] < 0.25 and errors[50][0] < 0.07, errors
    assert errors[50][1] < 0.07, errors
    assert errors[50][0] < errors[10][0] / 3, errors


def test_tiny_dit_round_trip_reconstructs_the_latent(backbone, photo):
    """Invert under class A, regenerate under class A: the input latent comes back, up to ODE error.

    The tiny DiT has random weights, so its probability-flow ODE is badly conditioned: the decoding half
    amplifies any error by up to 1/sqrt(alpha_bar_T) ~ 58 and lands latents of std ~60 for a class the
    latent was not inverted under. Errors are therefore stated relative to the distance between the
    reconstruction and the translation of the same x_T into another class (measured: 6% at 10 steps,
    0.4% at 50), and as convergence with the step count (the error is discretisation error).
    """
    transformer, scheduler, x0 = _setup(backbone, photo)
    errors, translations = {}, {}
    for steps in (10, 50):
        x_t = ddim_invert(transformer, scheduler.config, x0, TABBY, steps)
        back = ddim_sample(transformer, scheduler.config, x_t, TABBY, steps, guidance=1.0)
        other = ddim_sample(transformer, scheduler.config, x_t, GOLDFISH, steps, guidance=1.0)
        errors[steps], translations[steps] = _distance(back, x0), _distance(other, x0)
    assert errors[10] < 0.15 * translations[10], (errors, translations)
    assert errors[50] < 0.02 * translations[50], (errors, translations)
    assert errors[50] < errors[10] / 3, errors  # more ODE steps, smaller round-trip error


def test_method_is_invert_under_source_then_sample_under_target(backbone, photo):
    """The hub's output equals the two ODE halves composed by hand (source class in, target class out)."""
    transformer, scheduler, x0 = _setup(backbone, photo)
    steps, guidance = 4, 1.5
    inputs = EditInputs(image=photo, source_class=TABBY, target_class=GOLDFISH, steps=steps)
    comparison = run_comparison(
        backbone, "class", ["ddib_dit"], inputs, seed=0, params={"ddib_dit": {"guidance": guidance}}
    )
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    assert record["info"] == {"source": "281 tabby", "target": "1 goldfish"}
    x_t = ddim_invert(transformer, scheduler.config, x0, TABBY, steps)
    expected = decode_latents(backbone, ddim_sample(transformer, scheduler.config, x_t, GOLDFISH, steps, guidance))
    np.testing.assert_array_equal(np.asarray(comparison.result("ddib_dit")), np.asarray(expected))


def test_classes_change_the_image_and_shared_state_is_restored(backbone, photo):
    backbone.addon("dit")  # loaded first so that the fingerprint covers it
    before = backbone.state_fingerprint()
    wide = photo.resize((160, 128))  # not square: the method centre-crops to DiT's square size
    images = {}
    for target in (TABBY, GOLDFISH):
        inputs = EditInputs(image=wide, source_class=TABBY, target_class=target, steps=4)
        comparison = run_comparison(
            backbone, "class", ["ddib_dit"], inputs, seed=0, params={"ddib_dit": {"guidance": 1.0}}
        )
        assert comparison.records[0]["status"] == "ok", comparison.records[0]["message"]
        images[target] = np.asarray(comparison.result("ddib_dit"), dtype=np.float64)
    assert images[TABBY].shape == (128, 128, 3)
    assert np.abs(images[TABBY] - images[GOLDFISH]).mean() > 5.0
    assert backbone.state_fingerprint() == before


def test_unknown_or_missing_class_is_skipped_with_a_message(backbone, photo):
    for source, target, text in ((TABBY, 1000, "0 to 999"), (None, TABBY, "source class")):
        inputs = EditInputs(image=photo, source_class=source, target_class=target, steps=2)
        record = run_comparison(backbone, "class", ["ddib_dit"], inputs, seed=0).records[0]
        assert record["status"] == "skipped" and text in record["message"], record
