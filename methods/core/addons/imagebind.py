"""ImageBind's audio tower (the sound side of ImageBind's joint space; its image side is OpenCLIP ViT-H, which the
hub already has as IP-Adapter's image encoder)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from methods.core.addons import AddonSpec

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "methods.core.addons.tiny_imagebind"


def _audio_tower(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """The audio tower of the authors' ``imagebind_huge.pth`` (or a tiny / custom copy with its config beside it)."""
    from methods.core.imagebind import load_audio_tower

    return load_audio_tower(location, backbone.device, backbone.dtype)


SPECS = (
    AddonSpec(
        "imagebind_audio",
        "ImageBind (huge) audio tower: sound -> OpenCLIP ViT-H image-embedding space",
        "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",  # the authors' file; not on the model hub
        _audio_tower,
        f"{_TINY}:build_imagebind_audio",
        build_full="methods.core.addons.full_imagebind:build_imagebind_audio",
        licence="CC BY-NC-SA 4.0 (non-commercial; ImageBind code and weights, Meta)",
    ),
)
