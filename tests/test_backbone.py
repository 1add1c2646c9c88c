"""Profiles, settings and the borrow/restore guarantee, also when a method raises."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor

from methods.core.backbone import Backbone, resolve_profile
from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from methods.core.settings import Settings
from methods.sdedit import SDEdit
from tests.conftest import tiny_settings


def test_auto_falls_back_to_tiny_offline_with_a_banner(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    profile = resolve_profile("auto", tiny_settings().cache_dir)
    assert profile.is_tiny and "unreachable" in profile.reason
    backbone = Backbone(replace(tiny_settings(), backbone="auto"))
    assert backbone.profile.is_tiny
    assert "random weights" in backbone.banner() and "--backbone sd15" in backbone.banner()


def test_sd15_profile_names_the_real_checkpoints(monkeypatch) -> None:
    from methods.core import backbone as backbone_module
    from methods.core.addons import ADDONS

    monkeypatch.setattr(backbone_module, "_hub_has", lambda repo: True)
    assert resolve_profile("sd15", tiny_settings().cache_dir).location == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert ADDONS["inpaint_unet"].repo == "stable-diffusion-v1-5/stable-diffusion-inpainting"
    assert ADDONS["controlnet_openpose"].repo == "lllyasviel/control_v11p_sd15_openpose"


def test_a_local_diffusers_folder_is_a_backbone(backbone) -> None:
    custom = Backbone(replace(tiny_settings(), backbone=backbone.profile.location))
    assert custom.profile.name == "custom"
    assert custom.size == backbone.size
    assert "random weights" not in custom.banner()


def test_addon_override(backbone) -> None:
    folder = backbone.addon_location("controlnet_seg")
    other = Backbone(replace(tiny_settings(), addon_overrides={"controlnet_scribble": folder}))
    assert other.addon_location("controlnet_scribble") == folder
    with pytest.raises(KeyError, match="known add-ons"):
        other.addon("no_such_addon")


def test_settings_from_env_and_flags(monkeypatch) -> None:
    monkeypatch.setenv("HUB_BACKBONE", "tiny")
    monkeypatch.setenv("HUB_PORT", "7999")
    monkeypatch.setenv("HUB_ADDON_CONTROLNET_SEG", "/models/seg")
    settings = Settings.from_env(["--port", "8001", "--share"])
    assert settings.backbone == "tiny" and settings.port == 8001 and settings.share
    assert settings.addon_overrides == {"controlnet_seg": "/models/seg"}


def test_borrowed_restores_processors_even_when_the_block_raises(backbone) -> None:
    before = dict(backbone.unet.attn_processors)
    with pytest.raises(RuntimeError), backbone.borrowed():
        backbone.unet.set_attn_processor(AttnProcessor())
        backbone.unet.requires_grad_(True)
        raise RuntimeError("boom")
    after = backbone.unet.attn_processors
    assert all(after[name] is processor for name, processor in before.items())
    assert not any(p.requires_grad for p in backbone.unet.parameters())


def test_a_failing_method_becomes_an_error_cell_and_leaks_nothing(backbone, monkeypatch) -> None:
    def broken(self, ctx, inputs, params):
        ctx.backbone.unet.set_attn_processor(AttnProcessor())
        raise RuntimeError("simulated failure")

    inputs = example_inputs("text", backbone)
    fingerprint = backbone.state_fingerprint()
    monkeypatch.setattr(SDEdit, "run", broken)
    comparison = run_comparison(backbone, "text", ["sdedit"], inputs, seed=0)
    record = comparison.records[0]
    assert record["status"] == "error" and "simulated failure" in record["message"]
    assert comparison.cells[-1].kind == "error" and "failed" in comparison.cells[-1].caption
    assert backbone.state_fingerprint() == fingerprint
    assert torch.is_grad_enabled()
