"""The metric models behind ``evaluation.metrics`` (CLIP, DINO, LPIPS), as add-ons of the backbone.

A family of the add-on table (``methods.core.addons.FAMILIES``): ``backbone.addon("metric_clip")`` loads them
like any other add-on, real or tiny (``evaluation.tiny_metric_models``). Every loader keeps its model in float32
on every device, so scores do not depend on the backbone's dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from methods.core.addons import AddonSpec

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "evaluation.tiny_metric_models"


def _metric_clip(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(location, dtype=torch.float32).to(backbone.device).eval()
    return model.requires_grad_(False), CLIPProcessor.from_pretrained(location)


def _metric_dino(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    import torch
    from transformers import ViTImageProcessor, ViTModel

    model = ViTModel.from_pretrained(location, add_pooling_layer=False, dtype=torch.float32).to(backbone.device).eval()
    return model.requires_grad_(False), ViTImageProcessor.from_pretrained(location)


def _metric_lpips(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """A folder holding ``lpips_<net>.pth`` (a whole torchmetrics LPIPS state dict), or ``lpips:<net>``."""
    import torch
    from torchmetrics.functional.image.lpips import _LPIPS

    if location.startswith("lpips:"):
        # torchvision's ImageNet trunk (torchvision fetches it once into the torch cache) + torchmetrics' heads.
        network = _LPIPS(pretrained=True, net=location.split(":", 1)[1], pnet_rand=False)
    else:
        net = spec.weight_name or "alex"
        network = _LPIPS(pretrained=False, net=net, pnet_rand=True)
        state = torch.load(Path(location) / f"lpips_{net}.pth", map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    return network.to(backbone.device).eval().requires_grad_(False)


SPECS = (
    AddonSpec(
        "metric_clip",
        "CLIP ViT-L/14 for CLIP score and CLIP directional similarity (evaluation)",
        "openai/clip-vit-large-patch14",
        _metric_clip,
        f"{_TINY}:build_metric_clip",
    ),
    AddonSpec(
        "metric_dino",
        "DINO ViT-S/8 for the self-similarity structure distance (evaluation)",
        "facebook/dino-vits8",
        _metric_dino,
        f"{_TINY}:build_metric_dino",
    ),
    AddonSpec(
        "metric_lpips",
        "LPIPS (AlexNet trunk + linear heads, torchmetrics) for perceptual preservation (evaluation)",
        "lpips:alex",
        _metric_lpips,
        f"{_TINY}:build_metric_lpips",
        weight_name="alex",
    ),
)
