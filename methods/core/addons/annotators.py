"""Annotators that turn a photo into a method's input: OpenPose skeletons, lineart / HED / PiDiNet edges,
Segment Anything masks and ADE20K segmentation maps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from methods.core.addons import AddonSpec

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "methods.core.addons.tiny_annotators"


def _openpose(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    from controlnet_aux.open_pose import OpenposeDetector

    return OpenposeDetector.from_pretrained(location).to(backbone.device)


def _line_annotator(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """A controlnet_aux line / edge annotator (lineart, HED, PiDiNet) from its .pth files (real or tiny)."""
    from methods.core.annotators import load_line_annotator

    return load_line_annotator(spec.name, location, backbone.device)


def _sam(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """Segment Anything: the architecture from its config, then the plain state-dict file (real or tiny)."""
    from methods.core import sam

    weights = sam.weights_path(location, spec.weight_name or sam.VIT_B_FILE)
    return sam.load_sam(weights, sam.config_beside(weights), backbone.device)


def _semantic_segmenter(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """A transformers semantic segmenter (UperNet, SegFormer...) and its image processor, in float32 so the
    argmax over classes does not depend on the backbone's dtype."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from methods.core.loading import load_model

    model = load_model(AutoModelForSemanticSegmentation, location, variant=backbone.variant(spec), dtype=torch.float32)
    return model.to(backbone.device).eval().requires_grad_(False), AutoImageProcessor.from_pretrained(location)


SPECS = (
    AddonSpec(
        "openpose",
        "OpenPose body/hand/face annotator",
        "lllyasviel/Annotators",
        _openpose,
        f"{_TINY}:build_openpose",
        build_full="methods.core.addons.full_annotators:build_openpose",
        files=("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
    ),
    AddonSpec(
        "annotator_lineart",
        "Lineart annotator (controlnet_aux LineartDetector: sk_model.pth + sk_model2.pth)",
        "lllyasviel/Annotators",
        _line_annotator,
        f"{_TINY}:build_annotator_lineart",
        build_full="methods.core.addons.full_annotators:build_annotator_lineart",
        files=("sk_model.pth", "sk_model2.pth"),
    ),
    AddonSpec(
        "annotator_hed",
        "HED soft-edge annotator (controlnet_aux HEDdetector: ControlNetHED.pth)",
        "lllyasviel/Annotators",
        _line_annotator,
        f"{_TINY}:build_annotator_hed",
        build_full="methods.core.addons.full_annotators:build_annotator_hed",
        files=("ControlNetHED.pth",),
    ),
    AddonSpec(
        "annotator_pidinet",
        "PiDiNet soft-edge annotator (controlnet_aux PidiNetDetector: table5_pidinet.pth)",
        "lllyasviel/Annotators",
        _line_annotator,
        f"{_TINY}:build_annotator_pidinet",
        build_full="methods.core.addons.full_annotators:build_annotator_pidinet",
        files=("table5_pidinet.pth",),
    ),
    AddonSpec(
        "sam",
        "Segment Anything ViT-B (click-to-segment masks)",
        "ybelkada/segment-anything",
        _sam,
        f"{_TINY}:build_sam",
        build_full="methods.core.addons.full_annotators:build_sam",
        weight_name="checkpoints/sam_vit_b_01ec64.pth",
    ),
    AddonSpec(
        "ade20k_segmenter",
        "UperNet ConvNeXt-S semantic segmenter (ADE20K, 150 classes) for maps from photos",
        "openmmlab/upernet-convnext-small",
        _semantic_segmenter,
        f"{_TINY}:build_ade20k_segmenter",
        build_full="methods.core.addons.full_annotators:build_ade20k_segmenter",
    ),
)
