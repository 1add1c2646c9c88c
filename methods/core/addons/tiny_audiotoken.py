"""Tiny builders for ``audiotoken``: a 3-layer, 32-wide BEATs (its three layers stand for the official 4th, 8th
and 12th) and an FGA embedder whose output width is the tiny text encoder's hidden size, written as
``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt`` (``{"cfg", "model"}``, the official keys) +
``embedder_learned_embeds.bin`` + the kept layers in ``audiotoken_config.json``."""

from __future__ import annotations

from pathlib import Path

TINY_BEATS = {
    "embed_dim": 24,
    "encoder_layers": 3,
    "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 4,
    "conv_pos": 16,
    "conv_pos_groups": 4,
    "num_buckets": 32,
    "max_distance": 64,
}


def build_audiotoken(folder: Path) -> None:
    import torch

    from methods.core import beats
    from methods.core.tiny import CROSS_DIM

    config = beats.BEATsConfig(**TINY_BEATS)
    encoder = beats.AudioTokenEncoder(
        beats.BEATs(config), beats.FGAEmbedder(3 * config.encoder_embed_dim, CROSS_DIM), layers=(0, 1, 2)
    )
    beats.init_seeded(encoder, torch.Generator().manual_seed(1200))
    beats.save_audiotoken(encoder, folder)
