"""Full builders for ``classifiers``: microsoft/resnet-50 at its real config, seeded random weights
(``methods.core.fullsize``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from methods.core.fullsize import Writer


def resnet50_config() -> dict[str, Any]:
    """microsoft/resnet-50's config.json: ResNet-50 v1.5 (bottleneck blocks 3/4/6/3, 256..2048 wide), 1000 labels."""
    return {
        "num_channels": 3,
        "embedding_size": 64,
        "hidden_sizes": [256, 512, 1024, 2048],
        "depths": [3, 4, 6, 3],
        "layer_type": "bottleneck",
        "hidden_act": "relu",
        "downsample_in_first_stage": False,
    }


def build_imagenet_classifier(folder: Path, writer: Writer) -> None:
    """microsoft/resnet-50's root: the classifier (ImageNet-1k's labels) and its preprocessor_config.json
    (ConvNeXt-style: shortest edge 224 / crop_pct 0.875 = 256, centre crop 224, bicubic, ImageNet mean / std)."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    from methods.core.addons.tiny_classifiers import IMAGENET_MEAN, IMAGENET_STD, imagenet_labels

    labels = imagenet_labels()
    config = ResNetConfig(
        **resnet50_config(), num_labels=len(labels), id2label=labels, label2id={n: i for i, n in labels.items()}
    )
    model = writer.build(lambda: ResNetForImageClassification(config), 900)
    writer.save_model(model, folder)
    ConvNextImageProcessor(
        size={"shortest_edge": 224}, crop_pct=0.875, resample=3, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    ).save_pretrained(folder)
