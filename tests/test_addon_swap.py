"""Add-ons swap on a resident base: switching between ControlNets and T2I-Adapters never reloads the UNet, VAE
or text encoder; over the memory budget the least recently used add-on is evicted, reloaded on demand, and
gives the same result after the reload as before."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel

from methods.core.backbone import Backbone, module_bytes
from methods.core.controlnet import controlnet_call
from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from methods.core.settings import Settings
from methods.core.spec import RunContext
from methods.core.t2i_adapter import adapter_call
from tests.helpers import assert_same_image

SEED = 3


@pytest.fixture(scope="module")
def fresh() -> Backbone:
    """A backbone of its own (the session one's add-on cache and budget stay untouched)."""
    cache = os.environ.get("HUB_CACHE_DIR", str(Path.home() / ".cache" / "editing-hub"))
    return Backbone(Settings(backbone="tiny", cache_dir=Path(cache), device="cpu"))


def _run(backbone: Backbone, method: str, condition: str = "segmentation"):
    inputs = example_inputs(condition, backbone)
    return run_comparison(backbone, condition, [method], inputs, SEED).result(method)


def _base(backbone: Backbone) -> dict[str, tuple[int, int]]:
    """Identity and storage of each base module: a reload would give new objects and new tensors."""
    modules = {"unet": backbone.unet, "vae": backbone.vae, "text_encoder": backbone.text_encoder}
    return {k: (id(m), next(m.parameters()).data_ptr()) for k, m in modules.items()}


def test_switching_controlnets_and_adapters_keeps_the_base(fresh: Backbone, monkeypatch) -> None:
    base_location = str(fresh.profile.location)
    loads: list[str] = []
    for cls in (UNet2DConditionModel, AutoencoderKL, CLIPTextModel):
        original = cls.from_pretrained.__func__

        def counting(klass, location, *args, _original=original, **kwargs):
            loads.append(str(location))
            return _original(klass, location, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(counting))
    before = _base(fresh)
    for method in ("controlnet_seg", "t2i_adapter_seg", "multi_controlnet", "controlnet_seg", "t2i_adapter_seg"):
        _run(fresh, method)
        assert _base(fresh) == before, f"{method} replaced a base module"
    _run(fresh, "controlnet_openpose", "pose")
    assert _base(fresh) == before
    assert not [location for location in loads if location.startswith(base_location)], loads
    UNet2DConditionModel.from_pretrained(base_location, subfolder="unet")  # the probe sees a base load
    assert loads[-1] == base_location
    assert {"controlnet_seg", "controlnet_openpose", "t2i_adapter_seg"} <= set(fresh.loaded_addons())
    # The pipelines the methods build hold the very same base objects, whatever the add-on.
    inputs = example_inputs("segmentation", fresh)
    ctx = RunContext(backbone=fresh, seed=0, generator=torch.Generator().manual_seed(0))
    params = {"conditioning_scale": 1.0, "control_start": 0.0, "control_end": 1.0, "strength": 1.0}
    pipes = [
        controlnet_call(ctx, inputs, params, "controlnet_seg")[0],
        adapter_call(ctx, inputs, {"adapter_conditioning_scale": 1.0}, "t2i_adapter_seg")[0],
    ]
    for pipe in pipes:
        assert pipe.unet is fresh.unet and pipe.vae is fresh.vae and pipe.text_encoder is fresh.text_encoder


def test_lru_eviction_and_reload_give_the_same_results(fresh: Backbone) -> None:
    sizes = {n: module_bytes(fresh.addon(n)) for n in ("controlnet_seg", "controlnet_openpose", "t2i_adapter_seg")}
    assert sizes["controlnet_seg"] == sizes["controlnet_openpose"] > sizes["t2i_adapter_seg"]
    for name in fresh.loaded_addons():  # start empty
        fresh._addons.pop(name)
    # Room for two ControlNets, or one ControlNet and the T2I-Adapter; never for two ControlNets and the adapter.
    budget = 2 * sizes["controlnet_seg"] + sizes["t2i_adapter_seg"] // 2
    fresh.settings = dataclasses.replace(fresh.settings, addon_budget_gb=budget / 2**30)

    seg_before = _run(fresh, "controlnet_seg")
    seg_object = fresh.addon("controlnet_seg")
    adapter_before = _run(fresh, "t2i_adapter_seg")
    assert fresh.loaded_addons() == ["controlnet_seg", "t2i_adapter_seg"]
    _run(fresh, "controlnet_openpose", "pose")  # over budget: the least recently used (seg) goes
    assert fresh.loaded_addons() == ["t2i_adapter_seg", "controlnet_openpose"]
    _run(fresh, "t2i_adapter_seg")  # used again: now the pose ControlNet is the least recent
    seg_after = _run(fresh, "controlnet_seg")  # reloaded on demand
    assert fresh.loaded_addons() == ["t2i_adapter_seg", "controlnet_seg"]
    assert fresh.addon("controlnet_seg") is not seg_object  # really a new load
    assert_same_image(seg_after, seg_before)

    _run(fresh, "controlnet_scribble", "sketch")  # evicts the adapter (least recent)
    assert "t2i_adapter_seg" not in fresh.loaded_addons()
    adapter_after = _run(fresh, "t2i_adapter_seg")  # reloaded; evicts the seg ControlNet
    assert fresh.loaded_addons() == ["controlnet_scribble", "t2i_adapter_seg"]
    assert_same_image(adapter_after, adapter_before)
    assert sum(module_bytes(fresh.addon(n)) for n in list(fresh.loaded_addons())) <= budget
    assert not np.array_equal(np.asarray(seg_after), np.asarray(adapter_after))  # two different add-ons at work
