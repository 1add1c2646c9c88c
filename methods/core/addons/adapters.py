"""Adapters added to the base UNet: IP-Adapter's attention weights and the T2I-Adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from methods.core.addons import AddonSpec, WeightsFile, frozen_model

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "methods.core.addons.tiny_adapters"

_t2i_adapter = frozen_model("diffusers.T2IAdapter")


def _weights_file(location: str, spec: AddonSpec, backbone: Backbone) -> WeightsFile:
    return WeightsFile(location, spec.subfolder or "", spec.weight_name or "")


SPECS = (
    AddonSpec(
        "ip_adapter",
        "IP-Adapter SD 1.5 weights",
        "h94/IP-Adapter",
        _weights_file,
        f"{_TINY}:build_ip_adapter",
        build_full="methods.core.addons.full_adapters:build_ip_adapter",
        subfolder="models",
        weight_name="ip-adapter_sd15.safetensors",
        licence="Apache 2.0",
    ),
    AddonSpec(
        "t2i_adapter_openpose",
        "T2I-Adapter OpenPose (trained on SD 1.4)",
        "TencentARC/t2iadapter_openpose_sd14v1",
        _t2i_adapter,
        f"{_TINY}:build_t2i_adapter_openpose",
        build_full="methods.core.addons.full_adapters:build_t2i_adapter_openpose",
    ),
    AddonSpec(
        "t2i_adapter_sketch",
        "T2I-Adapter Sketch (grey edge maps; trained on SD 1.4)",
        "TencentARC/t2iadapter_sketch_sd14v1",
        _t2i_adapter,
        f"{_TINY}:build_t2i_adapter_sketch",
        build_full="methods.core.addons.full_adapters:build_t2i_adapter_sketch",
    ),
    AddonSpec(
        "t2i_adapter_seg",
        "T2I-Adapter Segmentation (trained on COCO-Stuff colour maps with SD 1.4)",
        "TencentARC/t2iadapter_seg_sd14v1",
        _t2i_adapter,
        f"{_TINY}:build_t2i_adapter_seg",
        build_full="methods.core.addons.full_adapters:build_t2i_adapter_seg",
    ),
)
