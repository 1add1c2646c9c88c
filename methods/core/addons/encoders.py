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

    from methods.core.loading import load_model

    config = CLIPVisionConfig.from_pretrained(location, subfolder=spec.subfolder)
    model = load_model(
        PaintByExampleImageEncoder,
        location,
        variant=backbone.variant(spec),
        subfolder=spec.subfolder,
        config=config,
        dtype=backbone.dtype,
    )
    processor = CLIPImageProcessor.from_pretrained(location, subfolder="feature_extractor")
    return model.to(backbone.device).eval().requires_grad_(False), processor


def _clap(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    from transformers import ClapModel, ClapProcessor

    from methods.core.loading import load_model

    # CLAP is small and its audio front end is sensitive to half precision: keep it in float32.
    model = (
        load_model(ClapModel, location, variant=backbone.variant(spec)).to(backbone.device).eval().requires_grad_(False)
    )
    return model, ClapProcessor.from_pretrained(location)


SPECS = (
    AddonSpec(
        "ip_adapter_image_encoder",
        "IP-Adapter's CLIP ViT-H image encoder",
        "h94/IP-Adapter",
        _image_encoder,
        f"{_TINY}:build_ip_adapter_image_encoder",
        build_full="methods.core.addons.full_encoders:build_ip_adapter_image_encoder",
        subfolder="models/image_encoder",
        licence="Apache 2.0",
    ),
    AddonSpec(
        "paint_by_example_image_encoder",
        "Paint-by-Example exemplar encoder (CLIP ViT-L/14 + mapper) and its image processor",
        "Fantasy-Studio/Paint-by-Example",
        _paint_by_example_encoder,
        f"{_TINY}:build_paint_by_example_image_encoder",
        build_full="methods.core.addons.full_encoders:build_paint_by_example_image_encoder",
        subfolder="image_encoder",
        files=("image_encoder/", "feature_extractor/"),
    ),
    AddonSpec(
        "clap",
        "CLAP audio-text model (HTS-AT, unfused)",
        "laion/clap-htsat-unfused",
        _clap,
        f"{_TINY}:build_clap",
        build_full="methods.core.addons.full_encoders:build_clap",
        licence="Apache 2.0",
    ),
)
