"""Speech recognisers: Whisper (Radford et al., 2022, https://arxiv.org/abs/2212.04356) for spoken instructions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from methods.core.addons import AddonSpec

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "methods.core.addons.tiny_speech"
_FULL = "methods.core.addons.full_speech"


def _whisper(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """WhisperForConditionalGeneration (backbone dtype and device, eval, no gradients) and its WhisperProcessor."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from methods.core.loading import load_model

    model = load_model(WhisperForConditionalGeneration, location, variant=backbone.variant(spec), dtype=backbone.dtype)
    return model.to(backbone.device).eval().requires_grad_(False), WhisperProcessor.from_pretrained(location)


SPECS = (
    AddonSpec(
        "whisper",
        "Whisper base speech recogniser (72.6M parameters, multilingual) and its processor",
        "openai/whisper-base",
        _whisper,
        f"{_TINY}:build_whisper",
        build_full=f"{_FULL}:build_whisper",
        licence="Apache 2.0 (model card; Whisper's code is MIT)",
    ),
)
