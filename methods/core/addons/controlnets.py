"""ControlNets (SD 1.5, v1.1): one per kind of control map."""

from __future__ import annotations

from methods.core.addons import AddonSpec, frozen_model

_TINY = "methods.core.addons.tiny_controlnets"

_controlnet = frozen_model("diffusers.ControlNetModel")

SPECS = (
    AddonSpec(
        "controlnet_openpose",
        "ControlNet v1.1 OpenPose",
        "lllyasviel/control_v11p_sd15_openpose",
        _controlnet,
        f"{_TINY}:build_controlnet_openpose",
        build_full="methods.core.addons.full_controlnets:build_controlnet_openpose",
        variant="fp16",
    ),
    AddonSpec(
        "controlnet_scribble",
        "ControlNet v1.1 Scribble",
        "lllyasviel/control_v11p_sd15_scribble",
        _controlnet,
        f"{_TINY}:build_controlnet_scribble",
        build_full="methods.core.addons.full_controlnets:build_controlnet_scribble",
        variant="fp16",
    ),
    AddonSpec(
        "controlnet_seg",
        "ControlNet v1.1 Segmentation (ADE20K colours)",
        "lllyasviel/control_v11p_sd15_seg",
        _controlnet,
        f"{_TINY}:build_controlnet_seg",
        build_full="methods.core.addons.full_controlnets:build_controlnet_seg",
        variant="fp16",
    ),
    AddonSpec(
        "controlnet_lineart",
        "ControlNet v1.1 Lineart",
        "lllyasviel/control_v11p_sd15_lineart",
        _controlnet,
        f"{_TINY}:build_controlnet_lineart",
        build_full="methods.core.addons.full_controlnets:build_controlnet_lineart",
        variant="fp16",
    ),
)
