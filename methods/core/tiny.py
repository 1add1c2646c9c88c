"""The tiny profile: every component from small configs with seeded random weights.

This module builds the tiny *base* (an SD-1.5-shaped pipeline folder) and holds what the add-ons' tiny
builders share (seeds, the UNet blocks, the byte-level CLIP tokenizer); each add-on's own builder lives
beside its spec (``methods.core.addons.tiny_<family>``). Every builder writes one component in the same
on-disk layout as its real checkpoint (diffusers or transformers format, same subfolders and file names),
so the backbone loads it back through the very same ``from_pretrained`` code as the real model. Outputs of
these weights look like noise: they exist so that tests, CI and offline starts exercise every real code
path on a 2-core machine.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

TINY_VERSION = "tiny-v3"
TINY_SIZE = 128  # working image size in pixels (latents 16x16; the UNet's levels 16, 8, 4, 2)
CROSS_DIM = 32
SEED = 0

# SD 1.5's UNet topology at small widths: four levels, cross-attention at 1/1, 1/2 and 1/4 of the latent and a
# plain DownBlock2D at 1/8, two layers per block (three per up block), 8 heads, so the attention layers have
# the real names and count (16 self + 16 cross) and the size multiple is 64 as for the real model. Only the
# widths (320, 640, 1280, 1280 -> 32, 32, 64, 64), the context size (768 -> 32) and the groups differ.
_UNET_BLOCKS = {
    "block_out_channels": (32, 32, 64, 64),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": CROSS_DIM,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
}


def _seeded(offset: int = 0) -> None:
    torch.manual_seed(SEED + offset)


def clip_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's byte-pair vocabulary (49 408 tokens) and merges, from the ``bpe_simple_vocab_16e6.txt.gz`` that
    the open-clip-torch package ships: the same ids and merges as the real SD 1.5 / CLIP tokenizer files."""
    import gzip
    from importlib.resources import files

    from transformers.convert_slow_tokenizer import bytes_to_unicode

    text = gzip.decompress(files("open_clip").joinpath("bpe_simple_vocab_16e6.txt.gz").read_bytes()).decode("utf-8")
    merges = [tuple(line.split()) for line in text.split("\n")[1 : 49152 - 256 - 2 + 1]]
    chars = list(bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), *("".join(m) for m in merges), "<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def clip_tokenizer():
    """SD 1.5's tokenizer: CLIP's real vocabulary and merges, 77 tokens (the tiny and the full-size profiles)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_bpe()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def tiny_unet(in_channels: int = 4, **extra):
    from diffusers import UNet2DConditionModel

    _seeded(in_channels)
    return UNet2DConditionModel(
        sample_size=TINY_SIZE // 8, in_channels=in_channels, out_channels=4, **_UNET_BLOCKS, **extra
    )


def build_base(folder: Path) -> None:
    """A whole SD-1.5-shaped pipeline folder (model_index.json + components)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = clip_tokenizer()
    _seeded(1)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=CROSS_DIM,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=CROSS_DIM,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    _seeded(2)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_SIZE,
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=tiny_unet(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    # SD 1.5's scheduler config carries clip_sample=false, which DDIM and other samplers read from it.
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["clip_sample"] = False
    config_path.write_text(json.dumps(config, indent=2))


def ensure_built(root: Path, name: str, builder) -> Path:
    """Build a tiny component into ``root/name`` once; later calls reuse the folder."""
    from filelock import FileLock

    folder = root / TINY_VERSION / name
    if (folder / ".complete").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time across processes (parallel test workers): the others wait, then reuse its folder.
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if (folder / ".complete").exists():
            return folder
        logger.info("building tiny %s in %s", name, folder)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        builder(staging)
        (staging / ".complete").write_text(json.dumps({"version": TINY_VERSION}))
        if folder.exists():  # a half-built folder from an interrupted run
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    return folder
