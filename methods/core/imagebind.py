"""ImageBind's audio tower: a sound clip -> one embedding in OpenCLIP ViT-H's image-embedding space.

ImageBind ("ImageBind: One Embedding Space To Bind Them All", Girdhar et al., CVPR 2023,
https://arxiv.org/abs/2305.05665; code and weights facebookresearch/ImageBind, CC BY-NC-SA 4.0, non-commercial)
keeps OpenCLIP ViT-H's image and text encoders frozen and trains an encoder per other modality against the
image embeddings of paired data. Its audio embedding therefore lives in the space of the OpenCLIP ViT-H/14
image embedding, the encoder IP-Adapter SD 1.5 uses (``h94/IP-Adapter`` ``models/image_encoder``): the hub's
``ip_adapter_image_encoder`` add-on embeds images in the same space, so no second image tower is loaded.

The tower, as the official ``imagebind_model.py`` builds it: 128-bin Kaldi log-mel filter banks of 2 s clips at
16 kHz, 204 frames, normalised with AudioSet's statistics (mean -4.268, std 9.138); a 16x16 convolution with
stride 10 (no bias) + LayerNorm as the patch stem, a learned class token and position embedding; 12 pre-norm
blocks of ``nn.MultiheadAttention`` with learned key/value biases (``add_bias_kv``) and a GELU MLP; the head
is LayerNorm -> the class token -> a linear map to 1024, L2-normalised. A clip is cut into three 2 s windows
spread evenly over its length (pytorchvideo's ``ConstantClipsPerVideoSampler``) and their embeddings averaged. (A
multi-channel file is downmixed to mono by the hub's audio reader; ImageBind's ``kaldi.fbank`` reads channel 0.)

Only the architecture is written here (no pip package ships it: PyPI's ``imagebind`` is an empty placeholder);
the filter banks are transformers' ``ASTFeatureExtractor`` (the same Kaldi recipe; AST divides by 2 std, so its
``std`` is half ImageBind's), the attention is PyTorch's. The module's parameter names are the checkpoint's
(``modality_preprocessors.audio.*``, ``modality_trunks.audio.*``, ``modality_heads.audio.*``), so the authors'
``imagebind_huge.pth`` loads strictly; the other modalities' weights in that file are not read into memory.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from methods.core.audio import per_clip, resample
from methods.core.loading import url_file
from methods.core.spec import Audio

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

WEIGHTS_FILE = "imagebind_huge.pth"
CONFIG_FILE = "imagebind_audio_config.json"  # written beside tiny / custom weights; absent = the real model
PREFIXES = ("modality_preprocessors.audio.", "modality_trunks.audio.", "modality_heads.audio.")


@dataclass(frozen=True)
class AudioTowerConfig:
    """imagebind_huge's audio settings (``imagebind_model.imagebind_huge``, ``data.load_and_transform_audio_data``)."""

    embed_dim: int = 768
    num_blocks: int = 12
    num_heads: int = 12
    out_dim: int = 1024
    num_mel_bins: int = 128
    target_length: int = 204
    kernel_size: int = 16
    stride: int = 10
    sampling_rate: int = 16_000
    clip_seconds: float = 2.0
    clips: int = 3
    mean: float = -4.268
    std: float = 9.138

    @property
    def patches(self) -> int:
        rows = (self.num_mel_bins - self.kernel_size) // self.stride + 1
        columns = (self.target_length - self.kernel_size) // self.stride + 1
        return rows * columns


class _Stem(nn.Module):
    def __init__(self, config: AudioTowerConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, config.embed_dim, config.kernel_size, stride=config.stride, bias=False)
        self.norm_layer = nn.LayerNorm(config.embed_dim)


class _Positions(nn.Module):
    def __init__(self, config: AudioTowerConfig) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, config.patches + 1, config.embed_dim))


class _Preprocessor(nn.Module):
    def __init__(self, config: AudioTowerConfig) -> None:
        super().__init__()
        self.rgbt_stem = _Stem(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embedding_helper = _Positions(config)

    def forward(self, spectrograms: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem.proj(spectrograms).flatten(2).transpose(1, 2)  # (B, patches, D)
        tokens = self.rgbt_stem.norm_layer(tokens)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class _Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, config: AudioTowerConfig) -> None:
        super().__init__()
        dim = config.embed_dim
        self.attn = nn.MultiheadAttention(dim, config.num_heads, bias=True, add_bias_kv=True)  # (L, B, D) layout
        self.norm_1, self.norm_2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class _Trunk(nn.Module):
    def __init__(self, config: AudioTowerConfig) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(_Block(config) for _ in range(config.num_blocks)))


class ImageBindAudio(nn.Module):
    """The audio tower: normalised filter banks (B, 1, mel, frames) -> unit embeddings (B, out_dim)."""

    def __init__(self, config: AudioTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.modality_preprocessors = nn.ModuleDict({"audio": _Preprocessor(config)})
        self.modality_trunks = nn.ModuleDict({"audio": _Trunk(config)})
        head = [
            nn.LayerNorm(config.embed_dim, eps=1e-6),
            nn.Identity(),
            nn.Linear(config.embed_dim, config.out_dim, bias=False),
        ]
        self.modality_heads = nn.ModuleDict({"audio": nn.Sequential(*head)})  # [1] is the checkpoint's SelectElement(0)

    def forward(self, spectrograms: torch.Tensor) -> torch.Tensor:
        tokens = self.modality_preprocessors["audio"](spectrograms).transpose(0, 1)  # (L, B, D)
        tokens = self.modality_trunks["audio"].blocks(tokens).transpose(0, 1)
        norm, _, projection = self.modality_heads["audio"]
        return nn.functional.normalize(projection(norm(tokens)[:, 0]), dim=-1)


# -- the clip's features ------------------------------------------------------------------------------
def clip_windows(audio: Audio, config: AudioTowerConfig) -> list[np.ndarray]:
    """The clip at 16 kHz cut into ``clips`` windows of ``clip_seconds``, their starts spread evenly over it
    (``ConstantClipsPerVideoSampler``); a clip shorter than a window is one window of its own length."""
    waveform = resample(audio, config.sampling_rate).waveform
    window = int(config.clip_seconds * config.sampling_rate)
    if len(waveform) <= window:
        return [waveform]
    last_start = (len(waveform) - window) / config.sampling_rate
    starts = [last_start * i / max(config.clips - 1, 1) for i in range(config.clips)]
    return [waveform[int(s * config.sampling_rate) : int(s * config.sampling_rate) + window] for s in starts]


def filter_banks(audio: Audio, config: AudioTowerConfig) -> torch.Tensor:
    """(windows, 1, mel bins, frames): ImageBind's normalised log-mel input for each window."""
    from transformers import ASTFeatureExtractor

    windows = [(w - w.mean()).astype(np.float32) for w in clip_windows(audio, config)]
    with warnings.catch_warnings():  # Kaldi's lowest of 128 mel bands are empty at a 512-point FFT, as in ImageBind's
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        extractor = ASTFeatureExtractor(
            sampling_rate=config.sampling_rate,
            num_mel_bins=config.num_mel_bins,
            max_length=config.target_length,
            mean=config.mean,
            std=config.std / 2,  # AST normalises by 2 std, ImageBind by std
        )
    values = extractor(windows, sampling_rate=config.sampling_rate, return_tensors="pt")["input_values"]
    return values.transpose(1, 2).unsqueeze(1)  # (B, frames, mel) -> (B, 1, mel, frames)


@torch.no_grad()
def audio_embedding(tower: ImageBindAudio, audio: Audio) -> torch.Tensor:
    """The clip's unit embedding (out_dim,) in float32: the mean of its windows' embeddings, renormalised."""
    parameter = next(tower.parameters())
    spectrograms = filter_banks(audio, tower.config).to(parameter.device, parameter.dtype)
    mean = tower(spectrograms).float().mean(dim=0)
    return mean / mean.norm().clamp_min(1e-12)


def sound_embedding(backbone: Backbone, audio: Audio) -> torch.Tensor:
    """:func:`audio_embedding` with the backbone's ImageBind add-on, cached per clip (the methods of the audio tab
    that use it share one computation)."""
    return per_clip(
        backbone, "imagebind_embeddings", audio, lambda: audio_embedding(backbone.addon("imagebind_audio"), audio)
    )


# -- weights ------------------------------------------------------------------------------------------
def audio_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The audio tower's entries of an ImageBind state dict (the other modalities and the logit scale dropped)."""
    return {k: v for k, v in state.items() if k.startswith(PREFIXES)}


def config_beside(weights: Path) -> AudioTowerConfig:
    path = weights.parent / CONFIG_FILE
    return AudioTowerConfig(**json.loads(path.read_text())) if path.exists() else AudioTowerConfig()


def weights_path(location: str) -> Path:
    """A local file, ``imagebind_huge.pth`` in a local folder, or the authors' URL (downloaded once into
    torch's hub cache, as the official code does)."""
    if "://" in location:
        return url_file(location)
    path = Path(location)
    return path / WEIGHTS_FILE if path.is_dir() else path


def load_audio_tower(location: str, device: torch.device, dtype: torch.dtype) -> ImageBindAudio:
    weights = weights_path(location)
    config = config_beside(weights)
    with torch.device("meta"):
        tower = ImageBindAudio(config)
    state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)  # mmap: only audio is read
    tower.load_state_dict(audio_state_dict(state), strict=True, assign=True)
    return tower.to(device, dtype).eval().requires_grad_(False)


def save_audio_tower(tower: ImageBindAudio, folder: Path, write_config: bool = True) -> Path:
    """``folder/imagebind_huge.pth`` in the checkpoint's key layout (+ the config for non-default towers)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHTS_FILE
    torch.save(tower.state_dict(), path)
    if write_config:
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(tower.config)))
    return path


def init_like_imagebind(tower: ImageBindAudio, generator: torch.Generator) -> None:
    """Seeded random weights with ImageBind's initialisation scales (Xavier linears, OpenCLIP-style tokens)."""
    scale = tower.config.embed_dim**-0.5
    for name, parameter in tower.named_parameters():
        with torch.no_grad():
            if name.endswith(("cls_token", "pos_embed", "bias_k", "bias_v")):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
            elif "norm" in name or name.startswith("modality_heads.audio.0"):
                parameter.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                parameter.zero_()
            else:  # Xavier-uniform over (fan out, fan in)
                bound = math.sqrt(6.0 / (parameter.shape[0] + parameter[0].numel()))
                parameter.copy_((torch.rand(parameter.shape, generator=generator) * 2 - 1) * bound)


def describe(tower: Any) -> str:
    config = tower.config
    return f"ImageBind audio tower ({config.num_blocks} blocks x {config.embed_dim}, -> {config.out_dim})"


# -- the image side: IP-Adapter's OpenCLIP ViT-H image encoder ----------------------------------------------------
def embed_pixels(encoder: Any, pixels: torch.Tensor) -> torch.Tensor:
    """Differentiable image embeddings (B, out_dim) of pixels in [-1, 1] (B, 3, H, W): the steps of the
    ``CLIPImageProcessor`` IP-Adapter uses, in torch (bicubic resize of the short side to the encoder's size, centre
    crop, CLIP's mean/std, which OpenCLIP ViT-H shares)."""
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    from methods.core.guidance import processor_input

    size = int(encoder.config.image_size)
    # unclamped under guidance: a clamp would zero the gradient where x̂0 saturates
    x = processor_input(pixels, size, size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, clamp=not pixels.requires_grad)
    return encoder(x.to(encoder.dtype)).image_embeds.float()


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return nn.functional.cosine_similarity(a.reshape(1, -1).float(), b.reshape(1, -1).float()).squeeze(0)
