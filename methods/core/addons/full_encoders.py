"""Full builders for ``encoders``: IP-Adapter's CLIP ViT-H/14, Paint-by-Example's CLIP ViT-L/14 exemplar encoder and
CLAP (HTS-AT, unfused) at their real configs, seeded random weights (``methods.core.fullsize``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from methods.core.fullsize import Writer


def vit_h_config() -> dict[str, Any]:
    """h94/IP-Adapter's models/image_encoder/config.json: OpenCLIP ViT-H/14 (1280 wide, 32 layers), projection 1024."""
    return {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 224,
        "projection_dim": 1024,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
    }


def vit_l_config() -> dict[str, Any]:
    """Fantasy-Studio/Paint-by-Example's image_encoder/config.json: CLIP ViT-L/14, projection to the UNet's 768."""
    return {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 224,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }


def build_ip_adapter_image_encoder(folder: Path, writer: Writer) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    model = writer.build(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**vit_h_config())), 200)
    writer.save_model(model, folder / "models" / "image_encoder")


def build_paint_by_example_image_encoder(folder: Path, writer: Writer) -> None:
    """PaintByExampleImageEncoder (ViT-L/14 + a 5-block mapper + projection) and its CLIPImageProcessor (224)."""
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    model = writer.build(lambda: PaintByExampleImageEncoder(CLIPVisionConfig(**vit_l_config())), 701)
    writer.save_model(model, folder / "image_encoder")
    CLIPImageProcessor().save_pretrained(folder / "feature_extractor")


def clap_config() -> Any:
    """laion/clap-htsat-unfused's config: ClapConfig's defaults (RoBERTa-base text tower, vocabulary 50 265; HTS-AT
    audio tower 2/2/6/2) with fusion off."""
    from transformers import ClapConfig

    return ClapConfig(audio_config={"enable_fusion": False})


def build_clap(folder: Path, writer: Writer) -> None:
    """laion/clap-htsat-unfused's root. Its tokenizer is byte-level (the real RoBERTa vocabulary file is not
    available offline): ids stay below the model's real vocabulary size, so every prompt tokenizes and embeds."""
    from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    from methods.core.addons.tiny_encoders import _byte_vocab

    config = clap_config()
    model = writer.build(lambda: ClapModel(config), 300)
    writer.save_model(model, folder)
    tokenizer = RobertaTokenizer(vocab=_byte_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]), merges=[])
    tokenizer.model_max_length = config.text_config.max_position_embeddings - 2
    extractor = ClapFeatureExtractor(truncation="rand_trunc")  # the unfused model's front end
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
