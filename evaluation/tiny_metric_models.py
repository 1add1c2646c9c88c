"""Tiny builders for ``evaluation.metric_models``: a small CLIP, a DINO-style ViT and LPIPS with a random trunk."""

from __future__ import annotations

from pathlib import Path

import torch

from methods.core.tiny import _seeded, clip_tokenizer


def build_metric_clip(folder: Path) -> None:
    """CLIPModel + CLIPProcessor in the root layout of openai/clip-vit-large-patch14."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer()
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    }
    # Seed chosen so image-text cosines of this random CLIP take both signs (most seeds give all one sign, and
    # the CLIP score clamps negatives to 0, which would leave the tiny score constant).
    _seeded(607)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def build_metric_dino(folder: Path) -> None:
    """A DINO-style ViT (ViTModel, patch 8, no pooler) + ViTImageProcessor, layout of facebook/dino-vits8."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    _seeded(601)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=64,
        patch_size=8,
        qkv_bias=True,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    # DINO's preprocessing: ImageNet mean / std (the real processor resizes to 224).
    ViTImageProcessor(
        size={"height": 64, "width": 64}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    ).save_pretrained(folder)


def build_metric_lpips(folder: Path) -> None:
    """torchmetrics' LPIPS network (AlexNet trunk, random weights) with its packaged linear heads, saved whole."""
    from torchmetrics.functional.image.lpips import _LPIPS

    _seeded(602)
    folder.mkdir(parents=True, exist_ok=True)
    # pnet_rand: torchvision's AlexNet with weights=None (no download); pretrained: torchmetrics' shipped heads.
    network = _LPIPS(pretrained=True, net="alex", pnet_rand=True)
    torch.save(network.state_dict(), folder / "lpips_alex.pth")
