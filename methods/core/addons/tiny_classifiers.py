"""Tiny builders for ``classifiers``: a small seeded ResNet over ImageNet's 1000 classes and its image processor."""

from __future__ import annotations

from pathlib import Path

from methods.core.tiny import _seeded

IMAGENET_MEAN = [0.485, 0.456, 0.406]  # the statistics microsoft/resnet-50's preprocessor_config.json normalises with
IMAGENET_STD = [0.229, 0.224, 0.225]


def imagenet_labels() -> dict[int, str]:
    """id -> name in ImageNet-1k's order (the class ids DiT and ``methods.core.imagenet`` use)."""
    from methods.core.imagenet import class_names

    return dict(enumerate(class_names()))


def build_imagenet_classifier(folder: Path) -> None:
    """ResNetForImageClassification (two basic stages, 8 and 16 wide, 1000 labels) and a ConvNextImageProcessor at
    32 px (resize to 32 / 0.875 = 36, centre crop 32), in the root layout of microsoft/resnet-50."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    labels = imagenet_labels()
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        layer_type="basic",
        num_labels=len(labels),
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
    )
    _seeded(900)
    ResNetForImageClassification(config).save_pretrained(folder)
    processor = ConvNextImageProcessor(
        size={"shortest_edge": 32}, crop_pct=0.875, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    processor.save_pretrained(folder)
