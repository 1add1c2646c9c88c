"""Full builders for ``adapters``: IP-Adapter SD 1.5 weights for SD 1.5's 16 cross-attention layers and the
SD 1.4 T2I-Adapters (full adapter, 320/640/1280/1280), seeded random weights (``methods.core.fullsize``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from methods.core.fullsize import Writer, sd15_unet, unet_config

IMAGE_EMBED_DIM = 1024  # the ViT-H image encoder's projection
IMAGE_TOKENS = 4


def ip_adapter_layers(unet: Any) -> list[int]:
    """The hidden size of each cross-attention layer, in ``unet.attn_processors`` order (how IP-Adapter numbers its
    ``ip_adapter.<1, 3, ..., 31>`` keys: the odd processors are the cross-attention ones)."""
    channels = unet.config.block_out_channels
    sizes = []
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            sizes.append(channels[-1])
        else:
            block = int(name.split(".")[1])
            sizes.append(channels[::-1][block] if name.startswith("up_blocks") else channels[block])
    return sizes


class IPAdapterWeights(nn.Module):
    """The original ip-adapter_sd15 layout: image_proj.{proj, norm} and ip_adapter.<i>.to_{k,v}_ip (no bias)."""

    def __init__(self, hidden_sizes: list[int], cross_attention_dim: int) -> None:
        super().__init__()
        self.image_proj = nn.ModuleDict(
            {
                "proj": nn.Linear(IMAGE_EMBED_DIM, cross_attention_dim * IMAGE_TOKENS),
                "norm": nn.LayerNorm(cross_attention_dim),
            }
        )
        self.ip_adapter = nn.ModuleDict(
            {
                str(2 * i + 1): nn.ModuleDict(
                    {
                        "to_k_ip": nn.Linear(cross_attention_dim, hidden, bias=False),
                        "to_v_ip": nn.Linear(cross_attention_dim, hidden, bias=False),
                    }
                )
                for i, hidden in enumerate(hidden_sizes)
            }
        )


def build_ip_adapter(folder: Path, writer: Writer) -> None:
    """h94/IP-Adapter's models/ip-adapter_sd15.safetensors (image_proj.proj [3072, 1024], to_k_ip [hidden, 768])."""
    from methods.core.fullsize import meta

    with meta():
        hidden_sizes = ip_adapter_layers(sd15_unet())
    cross = unet_config()["cross_attention_dim"]
    weights = writer.build(lambda: IPAdapterWeights(hidden_sizes, cross), 201)
    writer.save_tensors(weights.state_dict(), folder / "models" / "ip-adapter_sd15.safetensors")


def t2i_adapter_config(in_channels: int) -> dict[str, Any]:
    """TencentARC/t2iadapter_*_sd14v1's config.json: one feature map per SD down block, pixel-unshuffle 8."""
    return {
        "adapter_type": "full_adapter",
        "in_channels": in_channels,
        "channels": (320, 640, 1280, 1280),
        "num_res_blocks": 2,
        "downscale_factor": 8,
    }


def _t2i_adapter(writer: Writer, in_channels: int, seed: int) -> Any:
    from diffusers import T2IAdapter

    return writer.build(lambda: T2IAdapter.from_config(t2i_adapter_config(in_channels)), seed)


def build_t2i_adapter_openpose(folder: Path, writer: Writer) -> None:
    """TencentARC/t2iadapter_openpose_sd14v1 (RGB skeleton)."""
    writer.save_model(_t2i_adapter(writer, 3, 901), folder)


def build_t2i_adapter_sketch(folder: Path, writer: Writer) -> None:
    """TencentARC/t2iadapter_sketch_sd14v1 (one grey channel)."""
    writer.save_model(_t2i_adapter(writer, 1, 902), folder)


def build_t2i_adapter_seg(folder: Path, writer: Writer) -> None:
    """TencentARC/t2iadapter_seg_sd14v1 (colour segmentation maps)."""
    writer.save_model(_t2i_adapter(writer, 3, 800), folder)
