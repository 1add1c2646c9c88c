"""Plug-and-Play (methods/plug_and_play.py) and MasaCtrl (methods/masactrl.py) on the tiny backbone, 4 steps:
with target = source both reproduce the source reconstruction; while injecting, Plug-and-Play's target gets the
source's residual features and self-attention maps, MasaCtrl's target queries read the source's keys and values
in the chosen layers only; and every attention-control method (also Prompt-to-Prompt and its null-text entry)
leaves the UNet's processors, hooks, shared state and weights as it found them, also when it fails mid-run."""

from __future__ import annotations

import pytest
import torch

from methods.core.attention import AttentionController, Site, attend, attention_probs
from methods.core.branches import edit_photo
from methods.core.examples import example_inputs
from methods.core.inversion import reconstruct
from methods.core.runner import run_comparison
from methods.core.spec import RunContext
from methods.masactrl import MutualSelfAttention
from methods.plug_and_play import PlugAndPlayController
from tests.helpers import weights_checksum

STEPS = 4
CONTROLLED = ["prompt_to_prompt", "null_text_p2p", "plug_and_play", "masactrl"]


def edit(backbone, photo, controller, source: str, target: str, kind: str = "ddim"):
    ctx = RunContext(backbone=backbone, seed=0, generator=torch.Generator().manual_seed(0))
    return edit_photo(ctx, photo, source, target, STEPS, 7.5, controller, inversion=kind)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("kind", ["ddim", "negative-prompt"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: PlugAndPlayController(STEPS, 1.0, 1.0),  # inject features and attention in every step
        lambda: PlugAndPlayController(STEPS, 0.8, 0.5),  # the paper's fractions
        lambda: MutualSelfAttention(STEPS, 0.0, 0),  # mutual self-attention in every step and layer
        lambda: MutualSelfAttention(STEPS, 0.08, 10),  # the paper's S and L
    ],
    ids=["pnp-all", "pnp-paper", "masactrl-all", "masactrl-paper"],
)
def test_target_equal_to_source_reproduces_the_reconstruction(backbone, photo, make, kind: str) -> None:
    prompt = "a house on a meadow"
    result = edit(backbone, photo, make(), prompt, prompt, kind)
    # The same two-branch sampler with a pass-through controller: the same batch [src_u, tgt_u, src_c, tgt_c].
    passthrough = edit(backbone, photo, AttentionController(STEPS), prompt, prompt, kind)
    assert relative(result.source, passthrough.source) <= 1e-6  # measured 0: the source rows are left alone
    assert relative(result.target, result.source) <= 1e-6  # measured 0: the injected rows equal the target's own
    # And the two-branch source is the plain one-branch reconstruction (batch of 2), up to the float noise of
    # batch-size-dependent CPU kernels (measured 0 on one CPU, 3.7e-6 relative on another).
    assert relative(passthrough.source, reconstruct(backbone, result.inversion)) <= 1e-4


class RecordingPnP(PlugAndPlayController):
    def __init__(self, *args: float) -> None:
        super().__init__(STEPS, *args)
        self.features: list[tuple[int, torch.Tensor]] = []
        self.checked: list[tuple[int, float, float]] = []  # step, |out - injected formula|, |out - own attention|

    def inject_features(self, module, args, output):  # noqa: ANN001, ANN201 - test double
        new = super().inject_features(module, args, output)
        self.features.append((self.step, output if new is None else new))
        return new

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        out = super().forward(q, k, v, site)
        if not site.is_cross and site.place == "up":
            tgt, src = [1, 3], [0, 2]  # [src_uncond, tgt_uncond, src_cond, tgt_cond]
            injected = attention_probs(q[src], k[src], site.scale) @ v[tgt]
            own = attend(q[tgt], k[tgt], v[tgt], site.scale)
            self.checked.append((self.step, relative(out[tgt], injected), relative(out[tgt], own)))
        return out


def test_plug_and_play_injects_source_features_and_attention(backbone, photo) -> None:
    controller = RecordingPnP(0.75, 0.5)  # features in steps 0-2, attention in steps 0-1
    result = edit(backbone, photo, controller, "a house on a meadow", "a castle in the snow")
    assert [step for step, _ in controller.features] == [0, 1, 2, 3]
    for step, features in controller.features:
        source, target = features[[0, 2]], features[[1, 3]]
        if step < 3:
            assert torch.equal(source, target)
        else:
            assert relative(target, source) > 1e-3  # afterwards the target's own features (measured 0.41)
    assert len(controller.checked) == STEPS * 9  # SD 1.5's 9 decoder self-attention layers
    for step, to_injected, to_own in controller.checked:
        if step < 2:
            assert to_injected < 1e-5 and to_own > 1e-3, (step, to_injected, to_own)  # measured <1.2e-6, >2.6e-2
        else:
            assert to_own < 1e-6, (step, to_own)
    plain = edit(backbone, photo, PlugAndPlayController(STEPS, 0.0, 0.0), "a house on a meadow", "a castle in the snow")
    assert relative(result.target, plain.target) > 1e-2  # the injection changes the edit (measured 0.83)
    assert relative(result.source, plain.source) == 0.0  # and never the source branch


class RecordingMasaCtrl(MutualSelfAttention):
    def __init__(self, *args: float) -> None:
        super().__init__(STEPS, *args)
        self.checked: list[tuple[int, Site, float, float]] = []  # step, site, |out - mutual|, |out - own|

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        out = super().forward(q, k, v, site)
        if not site.is_cross:
            tgt, src = [1, 3], [0, 2]
            mutual = attention_probs(q[tgt], k[src], site.scale) @ v[src]
            own = attend(q[tgt], k[tgt], v[tgt], site.scale)
            self.checked.append((self.step, site, relative(out[tgt], mutual), relative(out[tgt], own)))
        return out


def test_masactrl_target_queries_read_source_keys_and_values(backbone, photo) -> None:
    controller = RecordingMasaCtrl(0.5, 10)  # from step 2; L = 10 of SD 1.5's 16 layers (the tiny UNet has 16)
    result = edit(backbone, photo, controller, "a house on a meadow", "a house with raised arms")
    mutual_layers = set()
    for step, site, to_mutual, to_own in controller.checked:
        if step >= 2 and site.index >= 10:
            assert to_mutual < 1e-5 and to_own > 1e-3, (step, site.name, to_mutual, to_own)  # 1e-6, 0.30
            mutual_layers.add(site.name)
        else:
            assert to_own < 1e-6, (step, site.name, to_own)
    assert mutual_layers == {  # the decoder's last six self-attention layers, as in the paper
        f"up_blocks.{block}.attentions.{i}.transformer_blocks.0.attn1" for block in (2, 3) for i in range(3)
    }
    plain = edit(
        backbone, photo, MutualSelfAttention(STEPS, 1.0, 16), "a house on a meadow", "a house with raised arms"
    )
    # measured 8.7e-3: two of four steps in three of seven layers, on random weights
    assert relative(result.target, plain.target) > 1e-3 and relative(result.source, plain.source) == 0.0


def unet_state(backbone) -> tuple[dict, dict, int]:
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in backbone.unet.modules())
    return dict(backbone.unet.attn_processors), backbone.state_fingerprint(), hooks


@pytest.mark.parametrize("name", CONTROLLED)
def test_controllers_restore_processors_state_and_weights_also_on_error(backbone, name: str, monkeypatch) -> None:
    inputs = example_inputs("text", backbone, steps=STEPS)
    processors, fingerprint, hooks = unet_state(backbone)
    weights = weights_checksum(backbone)

    def same_as_before() -> None:
        now_processors, now_fingerprint, now_hooks = unet_state(backbone)
        assert all(now_processors[key] is value for key, value in processors.items())
        assert now_fingerprint == fingerprint and now_hooks == hooks
        assert weights_checksum(backbone) == weights

    comparison = run_comparison(backbone, "text", [name], inputs, seed=0)
    assert comparison.records[0]["status"] == "ok", comparison.records[0]["message"]
    same_as_before()

    real_call = AttentionController.__call__

    def failing(self, q, k, v, site):  # noqa: ANN001, ANN202 - fails in the middle of the second step
        if self.step == 1 and self.layer == self.num_layers // 2:
            raise RuntimeError("controller failure")
        return real_call(self, q, k, v, site)

    monkeypatch.setattr(AttentionController, "__call__", failing)
    comparison = run_comparison(backbone, "text", [name], inputs, seed=0)
    assert comparison.records[0]["status"] == "error" and "controller failure" in comparison.records[0]["message"]
    same_as_before()
