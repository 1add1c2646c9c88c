"""Encoders of a method's other inputs: IP-Adapter's and Paint-by-Example's image encoders, CLAP for audio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from methods.core.addons import AddonSpec, frozen_model

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "methods.core.addons.tiny_encoders"

_image_encoder = frozen_model("transformers.CLIPVisionModelWithProjection")


def _paint_by_example_encoder(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """PaintByExampleImageEncoder (its config is a CLIPVisionConfig) and the CLIPImageProcessor beside it."""
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    config = CLIPVisionConfig.from_pretrained(location, subfolder=spec.subfolder)
    model = PaintByExampleImageEncoder.from_pretrained(
        location, subfolder=spec.subfolder, config=config, dtype=backbone.dtype
    )
    processor = CLIPImageProcessor.from_pretrained(location, subfolder="feature_extractor")
    return model.to(backbone.device).eval().requires_grad_(False), processor


def _clap(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    from transformers import ClapModel, ClapProcessor

    # CLAP is small and its audio front end is sensitive to half precision: keep it in float32.
    model = ClapModel.from_pretrained(location).to(backbone.device).eval().requires_grad_(False)
    return model, ClapProcessor.from_pretrained(location)


SPECS = (
    AddonSpec(
        "ip_adapter_image_encoder",
        "IP-Adapter's CLIP ViT-H image encoder",
        "h94/IP-Adapter",
        _image_encoder,
        f"{_TINY}:build_ip_adapter_image_encoder",
        subfolder="models/image_encoder",
    ),
    AddonSpec(
        "paint_by_example_image_encoder",
        "Paint-by-Example exemplar encoder (CLIP ViT-L/14 + mapper) and its image processor",
        "Fantasy-Studio/Paint-by-Example",
        _paint_by_example_encoder,
        f"{_TINY}:build_paint_by_example_image_encoder",
        subfolder="image_encoder",
    ),
    AddonSpec(
        "clap",
        "CLAP audio-text model (HTS-AT, unfused)",
        "laion/clap-htsat-unfused",
        _clap,
        f"{_TINY}:build_clap",
    ),
)
