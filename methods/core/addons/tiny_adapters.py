"""Tiny builders for ``adapters``: IP-Adapter weights for the tiny base UNet's attention layers, and
T2I-Adapters with one feature map per tiny UNet down block."""

from __future__ import annotations

from pathlib import Path

import torch

from methods.core.tiny import _UNET_BLOCKS, CROSS_DIM, _seeded, tiny_unet


def build_ip_adapter(folder: Path) -> None:
    """IP-Adapter weights with the original key layout: image_proj.* and ip_adapter.<i>.to_{k,v}_ip."""
    from safetensors.torch import save_file

    from methods.core.addons.full_adapters import ip_adapter_layers

    _seeded(201)
    unet = tiny_unet()
    image_embed_dim, tokens = 32, 4
    tensors = {
        "image_proj.proj.weight": torch.randn(CROSS_DIM * tokens, image_embed_dim) * 0.05,
        "image_proj.proj.bias": torch.zeros(CROSS_DIM * tokens),
        "image_proj.norm.weight": torch.ones(CROSS_DIM),
        "image_proj.norm.bias": torch.zeros(CROSS_DIM),
    }
    for i, hidden in enumerate(ip_adapter_layers(unet)):  # keys 1, 3, ..., 31: the cross-attention processors
        tensors[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = torch.randn(hidden, CROSS_DIM) * 0.05
        tensors[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = torch.randn(hidden, CROSS_DIM) * 0.05
    (folder / "models").mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "models" / "ip-adapter_sd15.safetensors"))


def _t2i_adapter(in_channels: int, seed: int, num_res_blocks: int = 2):
    """A full T2I-Adapter with one feature map per tiny UNet down block (32 channels at 1/8, 64 at 1/16), as
    the real SD 1.4 adapters have (320, 640, 1280, 1280) for SD's four; pixel-unshuffle 8 as the real ones
    (which have 2 res blocks per level)."""
    from diffusers import T2IAdapter

    _seeded(seed)
    channels = list(_UNET_BLOCKS["block_out_channels"])
    return T2IAdapter(in_channels=in_channels, channels=channels, num_res_blocks=num_res_blocks, downscale_factor=8)


def build_t2i_adapter_openpose(folder: Path) -> None:
    """T2I-Adapter OpenPose (RGB skeleton), root layout of TencentARC/t2iadapter_openpose_sd14v1."""
    _t2i_adapter(3, 901).save_pretrained(folder)


def build_t2i_adapter_sketch(folder: Path) -> None:
    """T2I-Adapter Sketch (one grey channel), root layout of TencentARC/t2iadapter_sketch_sd14v1."""
    _t2i_adapter(1, 902).save_pretrained(folder)


def build_t2i_adapter_seg(folder: Path) -> None:
    """T2I-Adapter (full adapter) for colour segmentation maps, root layout of TencentARC/t2iadapter_seg_sd14v1
    (one res block per level: its seeded weights predate the shared helper's default)."""
    _t2i_adapter(3, 800, num_res_blocks=1).save_pretrained(folder)
