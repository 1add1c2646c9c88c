"""Attention control (methods/core/attention.py): a pass-through controller changes nothing, the original
processor objects come back after normal exit and after an error, and the counters count layers and steps."""

from __future__ import annotations

import pytest
import torch

from methods.core.attention import (
    AttentionController,
    Site,
    attend,
    attention_probs,
    attention_sites,
    controlled,
)
from methods.core.branches import sample_branches
from methods.core.inversion import invert
from methods.core.latents import encode_prompt


@pytest.fixture(scope="module")
def unet_inputs(backbone) -> tuple[torch.Tensor, torch.Tensor]:
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    cond, uncond = encode_prompt(backbone, "a house on a meadow")
    return latents, torch.cat([uncond, cond])


class Recording(AttentionController):
    """Pass-through that records (step, layer, site) of each call; optionally through explicit softmax maps."""

    def __init__(self, num_steps: int, explicit: bool = False) -> None:
        super().__init__(num_steps)
        self.explicit = explicit
        self.calls: list[tuple[int, int, Site]] = []

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        self.calls.append((self.step, self.layer, site))
        if self.explicit:
            return attention_probs(q, k, site.scale) @ v
        return attend(q, k, v, site.scale)


def test_pass_through_controller_leaves_the_unet_output_unchanged(backbone, unet_inputs) -> None:
    latents, context = unet_inputs
    unet = backbone.unet
    expected = unet(latents, 500, encoder_hidden_states=context).sample
    for explicit in (False, True):
        with controlled(unet, Recording(1, explicit=explicit)):
            got = unet(latents, 500, encoder_hidden_states=context).sample
        difference = float((got - expected).abs().max())
        assert difference < 1e-5, (explicit, difference)  # measured: 0 (SDPA path), ~1e-7 (explicit softmax)


def test_original_processor_objects_come_back(backbone, unet_inputs) -> None:
    latents, context = unet_inputs
    unet = backbone.unet
    before = dict(unet.attn_processors)
    fingerprint = backbone.state_fingerprint()
    with controlled(unet, Recording(1)) as controller:
        assert all(p.controller is controller for p in unet.attn_processors.values())
        unet(latents, 10, encoder_hidden_states=context)
    assert all(unet.attn_processors[name] is processor for name, processor in before.items())

    class Failing(AttentionController):
        def forward(self, q, k, v, site):  # noqa: ANN001, ANN202 - a test double
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), controlled(unet, Failing(1)):
        unet(latents, 10, encoder_hidden_states=context)
    assert all(unet.attn_processors[name] is processor for name, processor in before.items())
    with pytest.raises(KeyError), controlled(unet, Recording(1)):
        raise KeyError("error inside the block, outside the UNet")
    assert all(unet.attn_processors[name] is processor for name, processor in before.items())
    assert backbone.state_fingerprint() == fingerprint


def test_counters_count_layers_and_steps(backbone, unet_inputs) -> None:
    latents, context = unet_inputs
    unet = backbone.unet
    sites = attention_sites(unet)
    layers = len(sites)  # SD 1.5's shape: 16 transformer blocks x (self, cross) = 32
    assert layers == 32 and {s.count for s in sites.values()} == {16}
    controller = Recording(3)
    with controlled(unet, controller):
        for t in (900, 500, 100):
            unet(latents, t, encoder_hidden_states=context)
        assert (controller.step, controller.layer, controller.num_layers) == (3, 0, layers)
    assert [(step, layer) for step, layer, _ in controller.calls] == [(s, i) for s in range(3) for i in range(layers)]
    first_step = [site for step, _, site in controller.calls if step == 0]
    # forward order: down, mid, up; block index rises; self then cross attention inside a block
    assert [s.place for s in first_step] == ["down"] * 12 + ["mid"] * 2 + ["up"] * 18
    assert [s.index for s in first_step] == [i // 2 for i in range(layers)]
    assert [s.is_cross for s in first_step] == [False, True] * 16
    with controlled(unet, controller):  # counters are reset per run
        assert (controller.step, controller.layer) == (0, 0)


def test_two_branch_sampler_batches_branches_in_one_call(backbone, photo) -> None:
    """Source and target share one UNet call per step; with the same prompt both branches are the same."""
    inversion = invert(backbone, photo, "a house on a meadow", 3, 7.5, "ddim")
    calls: list[int] = []
    handle = backbone.unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        controller = AttentionController(3)
        latents = sample_branches(backbone, inversion, inversion.prompt_embeds, controller)
    finally:
        handle.remove()
    assert calls == [4, 4, 4] and controller.step == 3
    assert float((latents[0] - latents[1]).abs().max()) < 1e-5
