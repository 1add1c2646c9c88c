"""Loading is loud: incomplete checkpoints fail with the repo and keys, fp16 variants are read first, the hub probe
wants a real 200, an unreachable SD 1.5 is one sentence, and prefetch picks the files the loaders read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file

import app
from methods.core import backbone as backbone_module
from methods.core import prefetch
from methods.core.addons import ADDONS
from methods.core.backbone import Backbone, BackboneUnavailable
from methods.core.loading import IncompleteCheckpoint, load_model
from methods.core.runner import run_comparison
from methods.core.spec import Condition
from tests.conftest import tiny_settings

WEIGHTS = "diffusion_pytorch_model.safetensors"


def _drop_key(folder: Path, key: str) -> None:
    state = load_file(str(folder / WEIGHTS))
    del state[key]
    save_file(state, str(folder / WEIGHTS))


@pytest.fixture(scope="module")
def broken_controlnet(backbone, tmp_path_factory) -> Path:
    """The tiny scribble ControlNet with one learned weight removed from its file."""
    from diffusers import ControlNetModel

    folder = tmp_path_factory.mktemp("broken-controlnet")
    ControlNetModel.from_pretrained(backbone.addon_location("controlnet_scribble")).save_pretrained(folder)
    _drop_key(folder, "controlnet_mid_block.weight")
    return folder


def test_a_missing_weight_fails_naming_the_repo_and_key(broken_controlnet) -> None:
    from diffusers import ControlNetModel

    with pytest.raises(IncompleteCheckpoint) as caught:
        load_model(ControlNetModel, str(broken_controlnet))
    assert str(broken_controlnet) in str(caught.value) and "controlnet_mid_block.weight" in str(caught.value)


def test_an_addon_with_a_missing_weight_is_a_failed_cell_not_random_weights(broken_controlnet) -> None:
    hub = Backbone(replace(tiny_settings(), addon_overrides={"controlnet_scribble": str(broken_controlnet)}))
    with pytest.raises(IncompleteCheckpoint, match="controlnet_mid_block.weight"):
        hub.addon("controlnet_scribble")
    assert "controlnet_scribble" not in hub.loaded_addons()


def test_the_fp16_variant_is_read_first_and_plain_files_are_the_fallback(backbone, tmp_path) -> None:
    source = Path(backbone.profile.location) / "unet"
    plain = UNet2DConditionModel.from_pretrained(source)
    plain.save_pretrained(tmp_path)
    marked = UNet2DConditionModel.from_pretrained(source)
    with torch.no_grad():
        marked.conv_in.bias.fill_(7.0)
    marked.to(torch.float16).save_pretrained(tmp_path, variant="fp16")
    read = load_model(UNet2DConditionModel, str(tmp_path), variant="fp16", dtype=torch.float32)
    assert read.dtype == torch.float32 and torch.all(read.conv_in.bias == 7.0)
    fallback = load_model(UNet2DConditionModel, str(source), variant="fp16", dtype=torch.float32)
    assert torch.equal(fallback.conv_in.bias, plain.conv_in.bias)


class _Answer:
    def __init__(self, status: int) -> None:
        self.status_code = status


@pytest.mark.parametrize(("status", "reachable"), [(200, True), (401, False), (404, False), (429, False)])
def test_the_hub_probe_wants_a_real_200(monkeypatch, tmp_path, status, reachable) -> None:
    import httpx

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(backbone_module, "_hub_cached", lambda repo: False)
    monkeypatch.setattr(httpx, "get", lambda *args, **kwargs: _Answer(status))
    assert backbone_module._hub_has("stable-diffusion-v1-5/stable-diffusion-v1-5") is reachable


def test_sd15_neither_cached_nor_reachable_is_one_sentence(monkeypatch, capsys) -> None:
    monkeypatch.setattr(backbone_module, "_hub_cached", lambda repo: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneUnavailable):
        Backbone(replace(tiny_settings(), backbone="sd15"))
    with pytest.raises(SystemExit) as caught:
        app.main(["--backbone", "sd15"])
    sentence = str(caught.value)
    assert "python -m methods prefetch" in sentence and "--backbone tiny" in sentence
    assert "\n" not in sentence and "Traceback" not in sentence


def test_prefetch_picks_one_copy_of_each_weight_preferring_the_variant() -> None:
    listing = {
        "model_index.json": 1,
        "v1-5-pruned.safetensors": 4_000,
        "unet/config.json": 1,
        "unet/diffusion_pytorch_model.safetensors": 3_400,
        "unet/diffusion_pytorch_model.fp16.safetensors": 1_700,
        "unet/diffusion_pytorch_model.bin": 3_400,
        "vae/config.json": 1,
        "vae/diffusion_pytorch_model.bin": 330,
        "tokenizer/vocab.json": 1,
        "tokenizer/merges.txt": 1,
        "safety_checker/model.safetensors": 1_200,
    }
    picked = prefetch.select(listing, prefetch.BASE_FILES, "fp16")
    assert set(picked) == {
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
    }
    root = {"config.json": 1, "diffusion_pytorch_model.safetensors": 9, "images/control.png": 5}
    assert set(prefetch.select(root, ("",), None)) == {"config.json", "diffusion_pytorch_model.safetensors"}


def test_prefetch_covers_every_addon_a_tab_loads() -> None:
    everything = {name for wanted in prefetch.plan() for name in wanted.addons}
    declared = {name for name, spec in ADDONS.items() if ":" not in spec.repo and not name.startswith("metric_")}
    assert declared <= everything | {"base"}
    pose = {name for wanted in prefetch.plan(["pose"]) for name in wanted.addons}
    assert {"base", "openpose", "controlnet_openpose", "t2i_adapter_openpose"} <= pose
    assert "dit" not in pose


def test_prefetch_prints_the_total_before_downloading(monkeypatch, capsys) -> None:
    from types import SimpleNamespace

    import huggingface_hub

    class FakeApi:
        def model_info(self, repo, files_metadata=False):
            names = ["config.json", "diffusion_pytorch_model.safetensors", "unet/config.json"]
            names += ["unet/diffusion_pytorch_model.safetensors", "model_index.json"]
            return SimpleNamespace(siblings=[SimpleNamespace(rfilename=n, size=2**20) for n in names])

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert prefetch.main(["--tabs", Condition.SKETCH.value, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "lllyasviel/control_v11p_sd15_scribble" in out and out.strip().splitlines()[-1].startswith("total:")


def test_an_incomplete_addon_is_a_sentence_in_its_cell(broken_controlnet) -> None:
    from methods.core.examples import example_inputs

    hub = Backbone(replace(tiny_settings(), addon_overrides={"controlnet_scribble": str(broken_controlnet)}))
    inputs = example_inputs(Condition.SKETCH, hub, steps=1)
    record = run_comparison(hub, Condition.SKETCH, ["controlnet_scribble"], inputs, seed=0).records[0]
    assert record["status"] == "error" and "missing from the checkpoint" in record["message"]
