"""Tiny builders for ``encoders``: small CLIP vision encoders and a small CLAP with a byte-level tokenizer."""

from __future__ import annotations

from pathlib import Path

from methods.core.tiny import CROSS_DIM, _seeded


def build_ip_adapter_image_encoder(folder: Path) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    _seeded(200)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder / "models" / "image_encoder")


def build_paint_by_example_image_encoder(folder: Path) -> None:
    """PaintByExampleImageEncoder (CLIP ViT + mapper + projection to the UNet's context size) and its
    CLIPImageProcessor, in the "image_encoder" / "feature_extractor" folders of Fantasy-Studio/Paint-by-Example."""
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    _seeded(701)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,  # the mapper has (layers + 1) // 5 = 1 transformer block, as the real one has 5 of 24
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=CROSS_DIM,
    )
    PaintByExampleImageEncoder(config).save_pretrained(folder / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder / "feature_extractor"
    )


def _byte_vocab(specials: list[str]) -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {token: i for i, token in enumerate(specials)}
    for char in bytes_to_unicode().values():
        vocab[char] = len(vocab)
    return vocab


def build_clap(folder: Path) -> None:
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizer,
    )

    tokenizer = RobertaTokenizer(vocab=_byte_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]), merges=[])
    tokenizer.model_max_length = 64
    text = ClapTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=72,
        projection_dim=16,
        pad_token_id=tokenizer.pad_token_id,
    )
    audio = ClapAudioConfig(
        depths=[1, 1],
        num_attention_heads=[2, 2],
        patch_embeds_hidden_size=16,
        hidden_size=32,
        projection_dim=16,
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
    )
    _seeded(300)
    model = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer).save_pretrained(folder)
