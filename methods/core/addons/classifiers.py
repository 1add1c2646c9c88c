"""Image classifiers that a method differentiates through: an ImageNet-1k classifier for universal guidance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from methods.core.addons import AddonSpec

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "methods.core.addons.tiny_classifiers"


def _image_classifier(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """Any ``AutoModelForImageClassification`` checkpoint over ImageNet-1k's 1000 classes, and its image processor.

    The classifier stays in float32 whatever the backbone's dtype: guidance back-propagates log p(y | x) through
    it, and in float16 the softmax's gradients (~1e-3 per logit, smaller per pixel) underflow. ResNet-50 is 100 MB
    in float32, small beside DiT-XL/2 and the VAE."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from methods.core.loading import load_model

    model = load_model(AutoModelForImageClassification, location, variant=backbone.variant(spec), dtype=torch.float32)
    if model.config.num_labels != 1000:
        raise ValueError(
            f"{location} classifies into {model.config.num_labels} classes, not ImageNet-1k's 1000: point the "
            "imagenet_classifier add-on at an ImageNet-1k classifier."
        )
    processor = AutoImageProcessor.from_pretrained(location)
    return model.to(backbone.device).eval().requires_grad_(False), processor


SPECS = (
    AddonSpec(
        "imagenet_classifier",
        "ResNet-50 ImageNet-1k classifier and its image processor (off-the-shelf, not noise-aware)",
        "microsoft/resnet-50",
        _image_classifier,
        f"{_TINY}:build_imagenet_classifier",
        build_full="methods.core.addons.full_classifiers:build_imagenet_classifier",
        licence="Apache 2.0",
    ),
)
