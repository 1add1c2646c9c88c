"""One backbone, resident once: every method runs on the backbone's own modules (base or add-on), all
decode with the very same VAE, and no method loads a private model."""

from __future__ import annotations

import torch
from diffusers import ModelMixin
from transformers import PreTrainedModel

from methods.core.examples import example_inputs
from methods.core.registry import list_methods
from methods.core.runner import run_comparison


def _owned(backbone) -> set[int]:
    return {id(m) for module in backbone.shared_modules().values() for m in module.modules()}


def test_all_methods_run_on_the_same_modules(backbone) -> None:
    base_ids = {name: id(getattr(backbone, name)) for name in ("unet", "vae", "text_encoder")}
    used: dict[str, set[int]] = {}
    current: set[int] = set()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: current.add(id(module)))
    try:
        for method in list_methods():
            current.clear()
            comparison = run_comparison(
                backbone, method.condition, [method.name], example_inputs(method.condition, backbone, steps=2), seed=0
            )
            assert comparison.records[0]["status"] == "ok", comparison.records[0]["message"]
            used[method.name] = set(current)
    finally:
        handle.remove()
    owned = _owned(backbone)
    models = {id(m): m for m in _all_models(backbone)}
    for name, ids in used.items():
        assert id(backbone.vae.decoder) in ids, f"{name} did not decode with the shared VAE"
        foreign = [i for i in ids if i not in owned and i in models]
        assert not foreign, f"{name} ran models the backbone does not own"
    # The base modules are still the very objects loaded at start.
    assert {name: id(getattr(backbone, name)) for name in base_ids} == base_ids
    assert len(used) == len(list_methods()) >= 10


def _all_models(backbone) -> list[torch.nn.Module]:
    import gc

    return [o for o in gc.get_objects() if isinstance(o, ModelMixin | PreTrainedModel)]


def test_pipelines_share_modules(backbone) -> None:
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = backbone.pipeline(StableDiffusionImg2ImgPipeline)
    assert pipe.unet is backbone.unet and pipe.vae is backbone.vae and pipe.text_encoder is backbone.text_encoder
    assert pipe.scheduler is not backbone.scheduler  # each run steps its own copy


def test_addons_are_cached_and_evicted_beyond_budget(backbone) -> None:
    from dataclasses import replace

    from methods.core.backbone import Backbone, module_bytes
    from tests.conftest import tiny_settings

    first = backbone.addon("controlnet_scribble")
    assert backbone.addon("controlnet_scribble") is first  # cached
    # A budget that holds one ControlNet but not two: the least recently used one goes.
    one = module_bytes(first) / 2**30
    small = Backbone(replace(tiny_settings(), addon_budget_gb=one * 1.5))
    small.addon("controlnet_scribble")
    small.addon("controlnet_seg")
    assert small.loaded_addons() == ["controlnet_seg"]
    small.addon("inpaint_unet")  # larger than the budget on its own: kept, everything older evicted
    assert small.loaded_addons() == ["inpaint_unet"]


def test_pipelines_keep_the_backbones_half_precision() -> None:
    """diffusers' from_pipe casts modules to float32 unless told otherwise; the backbone must tell it."""
    from diffusers import StableDiffusionImg2ImgPipeline

    from methods.core.backbone import Backbone
    from tests.conftest import tiny_settings

    half = Backbone(tiny_settings())
    half.base.to(dtype=torch.bfloat16)
    half.dtype = torch.bfloat16
    pipe = half.pipeline(StableDiffusionImg2ImgPipeline)
    assert pipe.unet.dtype == half.unet.dtype == torch.bfloat16
    assert half.vae.dtype == half.text_encoder.dtype == torch.bfloat16
