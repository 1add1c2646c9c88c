"""Tiny builders for ``imagebind``: a 2-block audio tower whose output width is the tiny IP-Adapter image
encoder's projection width, saved as ``imagebind_huge.pth`` in the checkpoint's key layout."""

from __future__ import annotations

from pathlib import Path


def build_imagebind_audio(folder: Path) -> None:
    import torch

    from methods.core import imagebind

    config = imagebind.AudioTowerConfig(embed_dim=32, num_blocks=2, num_heads=4, out_dim=32)
    tower = imagebind.ImageBindAudio(config)
    imagebind.init_like_imagebind(tower, torch.Generator().manual_seed(1100))
    imagebind.save_audio_tower(tower, folder)
