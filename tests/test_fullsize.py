"""The full-size profile builder (``methods.core.fullsize``): the hub-cache layout, the real configs (checked on the
meta device, no weights), and small pieces written for real and loaded back through the real loading code."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from safetensors import safe_open
from torch import nn

from methods.core import fullsize
from methods.core.addons import (
    ADDONS,
    WeightsFile,
    full_adapters,
    full_annotators,
    full_encoders,
    full_unets,
    get_addon_spec,
)
from methods.core.tiny import clip_tokenizer as fullsize_tokenizer

IP_REPO, IP_FILE = "h94/IP-Adapter", "models/ip-adapter_sd15.safetensors"
SKETCH_REPO = "TencentARC/t2iadapter_sketch_sd14v1"
# SD 1.5's hidden size at each cross-attention layer, in attn_processors order (down, up, mid)
SD15_CROSS_ATTENTION = [320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320, 1280]
# what a loader reads of a backbone: device, dtype and the weights variant of a real (not tiny) profile
STAND_IN = SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32, variant=lambda spec: spec.variant)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub")
    assert fullsize.main(["--only", "ip_adapter,t2i_adapter_sketch", "--cache-dir", str(folder)]) == 0
    return folder


def test_cache_layout_is_found_by_huggingface_hub(cache: Path) -> None:
    for repo in (IP_REPO, SKETCH_REPO):
        commit = (fullsize.repo_folder(cache, repo) / "refs" / "main").read_text()
        assert re.fullmatch("[0-9a-f]{40}", commit)
    cached = try_to_load_from_cache(IP_REPO, IP_FILE, cache_dir=cache)
    assert isinstance(cached, str)
    assert hf_hub_download(IP_REPO, IP_FILE, cache_dir=cache, local_files_only=True) == cached
    assert isinstance(try_to_load_from_cache(SKETCH_REPO, "config.json", cache_dir=cache), str)
    assert try_to_load_from_cache(IP_REPO, "models/image_encoder/config.json", cache_dir=cache) is None  # not built


def test_ip_adapter_weights_have_the_real_layout_and_sizes(cache: Path) -> None:
    path = hf_hub_download(IP_REPO, IP_FILE, cache_dir=cache, local_files_only=True)
    with safe_open(path, "pt") as file:
        state = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    assert state["image_proj.proj.weight"].shape == (3072, 1024)
    assert state["image_proj.norm.weight"].shape == (768,)
    ids = sorted(int(k.split(".")[1]) for k in state if k.endswith("to_k_ip.weight"))
    assert ids == list(range(1, 32, 2))
    hidden = [state[f"ip_adapter.{i}.to_k_ip.weight"].shape for i in ids]
    assert hidden == [(h, 768) for h in SD15_CROSS_ATTENTION]
    assert {t.dtype for t in state.values()} == {torch.float16}
    assert torch.equal(state["image_proj.norm.weight"], torch.ones(768, dtype=torch.float16))
    assert not state["image_proj.proj.bias"].any()
    # diffusers' own conversion (what pipe.load_ip_adapter runs) accepts every key, on SD 1.5's UNet config
    with fullsize.meta():
        unet = fullsize.sd15_unet()
    split = {
        p: {k[len(p) + 1 :]: v for k, v in state.items() if k.startswith(p + ".")} for p in ("image_proj", "ip_adapter")
    }
    processors = unet._convert_ip_adapter_attn_to_diffusers([split], low_cpu_mem_usage=False)
    assert sum(hasattr(p, "to_k_ip") for p in processors.values()) == 16
    unet._convert_ip_adapter_image_proj_to_diffusers(split["image_proj"], low_cpu_mem_usage=False)
    spec = get_addon_spec("ip_adapter")
    assert spec.load(spec.repo, spec, STAND_IN) == WeightsFile(IP_REPO, "models", "ip-adapter_sd15.safetensors")


def test_t2i_adapter_loads_through_its_spec_from_the_hub_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    spec = get_addon_spec("t2i_adapter_sketch")
    adapter = spec.load(spec.repo, spec, STAND_IN)  # the loader refuses missing or mismatched weights
    assert adapter.config.in_channels == 1
    assert tuple(adapter.config.channels) == (320, 640, 1280, 1280)
    assert adapter.config.num_res_blocks == 2
    with torch.no_grad():
        features = adapter(torch.rand(1, 1, 256, 256))
    assert [f.shape[1] for f in features] == [320, 640, 1280, 1280]
    assert all(torch.isfinite(f).all() and f.abs().max() < 1e3 for f in features)


def test_a_complete_piece_is_skipped_and_another_dtype_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--only", "ip_adapter", "--cache-dir", str(tmp_path)]
    assert fullsize.main(argv) == 0
    path = Path(hf_hub_download(IP_REPO, IP_FILE, cache_dir=tmp_path, local_files_only=True))
    written = path.stat().st_mtime_ns
    assert fullsize.main(argv) == 0
    assert path.stat().st_mtime_ns == written
    assert "ip_adapter: skipped" in capsys.readouterr().out
    assert fullsize.main([*argv, "--dtype", "fp32"]) == 0
    with safe_open(str(path), "pt") as file:
        assert file.get_tensor("image_proj.proj.weight").dtype == torch.float32
    assert fullsize.read_marker(path.parents[1]) == {"ip_adapter": "float32"}


def test_list_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert fullsize.main(["--list", "--only", "controlnet_seg,sam", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "diffusion_pytorch_model.fp16.safetensors" in out  # the ControlNet's fp16 variant
    assert "checkpoints/sam_vit_b_01ec64.pth" in out
    assert not any(tmp_path.iterdir())


def test_unknown_piece_names_the_known_ones(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        fullsize.main(["--only", "no_such_model"])
    assert "known pieces: base," in capsys.readouterr().err


def test_another_cached_commit_is_not_touched(tmp_path: Path) -> None:
    refs = fullsize.repo_folder(tmp_path, IP_REPO) / "refs" / "main"
    refs.parent.mkdir(parents=True)
    refs.write_text("0" * 40)
    assert fullsize.main(["--only", "ip_adapter", "--cache-dir", str(tmp_path)]) == 1
    assert refs.read_text() == "0" * 40
    assert not (refs.parents[1] / "snapshots").exists()


def test_weights_are_seeded_in_the_target_dtype() -> None:
    writer = fullsize.Writer(dtype=torch.float16)

    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(1024, 512), nn.LayerNorm(512))

    model = writer.build(make, seed=3)
    linear, norm = model[0], model[1]
    assert linear.weight.dtype == torch.float16 and not linear.weight.is_meta
    assert abs(linear.weight.float().std().item() - 1024**-0.5) < 0.002  # normal(0, 1/sqrt(fan_in))
    assert not linear.bias.any() and not norm.bias.any()
    assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    assert torch.equal(writer.build(make, seed=3)[0].weight, linear.weight)
    assert not torch.equal(writer.build(make, seed=4)[0].weight, linear.weight)
    assert fullsize.Writer(dtype=torch.float32, variant="fp16").weights_dtype == torch.float16


def test_base_has_the_real_sd15_configs(tmp_path: Path) -> None:
    writer = fullsize.Writer(variant="fp16", dry_run=True, root=tmp_path)
    fullsize.build_base(tmp_path, writer)
    assert writer.planned["unet/diffusion_pytorch_model.fp16.safetensors"] == 859_520_964 * 2
    assert writer.planned["vae/diffusion_pytorch_model.fp16.safetensors"] == 83_653_863 * 2
    assert writer.planned["text_encoder/model.fp16.safetensors"] == 123_060_480 * 2
    index = (tmp_path / "model_index.json").read_text()
    assert '"safety_checker": [\n    null,\n    null\n  ]' in index
    assert '"clip_sample": false' in (tmp_path / "scheduler" / "scheduler_config.json").read_text()
    assert (tmp_path / "tokenizer" / "tokenizer_config.json").exists()
    with fullsize.meta():
        unet = fullsize.sd15_unet()
    assert tuple(unet.config.block_out_channels) == (320, 640, 1280, 1280)
    assert (unet.config.cross_attention_dim, unet.config.sample_size, unet.config.layers_per_block) == (768, 64, 2)
    assert len(unet.attn_processors) == 32
    assert full_adapters.ip_adapter_layers(unet) == SD15_CROSS_ATTENTION
    assert len(fullsize_tokenizer()) == 49408


def test_addons_have_their_real_configs() -> None:
    from diffusers import ControlNetModel, DiTTransformer2DModel, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with fullsize.meta():
        vit_h = CLIPVisionModelWithProjection(CLIPVisionConfig(**full_encoders.vit_h_config()))
        controlnet = ControlNetModel.from_unet(fullsize.sd15_unet(), load_weights_from_unet=False)
        gligen = UNet2DConditionModel.from_config(fullsize.unet_config(attention_type="gated"))
        dit = DiTTransformer2DModel.from_config(full_unets.dit_config())
    assert (vit_h.config.hidden_size, vit_h.config.num_hidden_layers, vit_h.config.projection_dim) == (1280, 32, 1024)
    assert params(vit_h) == 632_076_800
    assert tuple(controlnet.config.conditioning_embedding_out_channels) == (16, 32, 96, 256)
    assert tuple(controlnet.config.block_out_channels) == (320, 640, 1280, 1280)
    assert gligen.position_net is not None and gligen.config.attention_type == "gated"
    assert (dit.config.num_layers, dit.config.num_attention_heads * dit.config.attention_head_dim) == (28, 1152)
    assert (dit.config.out_channels, dit.config.num_embeds_ada_norm) == (8, 1000)
    clap = full_encoders.clap_config()
    assert clap.text_config.vocab_size == 50265 and clap.audio_config.enable_fusion is False
    assert full_encoders.vit_l_config()["projection_dim"] == 768
    segmenter = full_annotators.ade20k_segmenter_config()
    assert segmenter.backbone_config.depths == [3, 3, 27, 3] and segmenter.num_labels == 150


def test_every_hub_addon_has_a_full_builder() -> None:
    for spec in ADDONS.values():
        if not spec.build_tiny.startswith("methods."):
            continue  # the metric models (evaluation/) are out of the full profile
        module, _, function = spec.build_full.partition(":")
        assert module == spec.build_tiny.partition(":")[0].replace(".tiny_", ".full_"), spec.name
        assert callable(getattr(__import__(module, fromlist=[function]), function)), spec.name
    assert [p.name for p in fullsize.pieces()][0] == "base"
