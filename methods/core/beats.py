"""BEATs (the audio encoder) and AudioToken's FGA embedder: a sound clip -> one pseudo-word embedding.

BEATs ("BEATs: Audio Pre-Training with Acoustic Tokenizers", Chen et al., ICML 2023,
https://arxiv.org/abs/2212.09058; code microsoft/unilm ``beats/``, MIT) as AudioToken vendors it
(guyyariv/AudioToken ``modules/BEATs``): 128-bin Kaldi log-mel filter banks of the waveform x 2^15 at 16 kHz
(25 ms povey windows every 10 ms), normalised as (fbank - 15.41663) / (2 x 6.55582); a 16x16 patch convolution
(no bias) + LayerNorm(512) + a linear map to 768; a weight-normed grouped positional convolution (kernel 128,
16 groups, ``SamePad``, GELU) added to the input, LayerNorm; 12 post-norm DeepNorm layers (residual x (2L)^(1/4))
whose attention adds a bucketed relative-position bias (320 buckets, computed in layer 0 and passed on) gated per
layer by ``grep_linear`` / ``grep_a`` (gated relative position, as in WavLM). AudioToken's ``backbone.py`` returns,
besides the last layer, the outputs of layers 3, 7 and 11 (0-based) concatenated on the channel axis:
(B, frames, 3 x 768) = the embedder's ``input_size = 768 * 3``.

The FGA embedder (``modules/AudioToken/embedder.py`` + ``modules/FGA/atten.py``): fc1 (2304 -> 2304), GELU,
fc2 (2304 -> 768), then factor-graph attention over time with one utility (a unary potential: 1x1 conv, ReLU,
1x1 conv to a scalar; a self potential: mean cosine similarity of two 1x1-conv embeddings; the two mixed by a
bias-free 1x1 conv), softmax over frames, the weighted sum of fc2's frames = the token (B, 768).

Changed: attention is PyTorch's ``scaled_dot_product_attention`` with the relative bias as its mask (the official
code subtracts the row maximum and rescales by alpha=32 before the softmax, which does not change it); the
positional convolution uses ``torch.nn.utils.parametrizations.weight_norm`` (the checkpoint's ``weight_g`` /
``weight_v`` are mapped to ``parametrizations.weight.original0/1`` on load and back on save); the filter banks are
transformers' numpy ``spectrogram`` with the Kaldi povey window and Kaldi mel filters (torchaudio's ``kaldi.fbank``
recipe, which ``ASTFeatureExtractor`` reproduces with a Hann window instead). The official unary potential calls
``F.dropout`` with its default ``training=True``, so the released inference is random (p = 0.5); here it is the
identity (eval), the dropout's expectation. Only inference is ported: no padding masks, no predictor, no layer drop.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from methods.core.addons.audiotoken import EMBEDDER_URL  # the add-on table owns the URLs

BEATS_FILE = "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
EMBEDDER_FILE = "embedder_learned_embeds.bin"
CONFIG_FILE = "audiotoken_config.json"  # beside tiny / custom weights; absent = the official layers (3, 7, 11)
OFFICIAL_LAYERS = (3, 7, 11)  # backbone.py: ``if i in [3, 7, 11]: layers.append(x.transpose(0, 1))``
FBANK_MEAN, FBANK_STD = 15.41663, 6.55582  # BEATs.extract_features' defaults
SAMPLING_RATE, CLIP_SECONDS, TILES = 16_000, 10, 10  # dataloader.aud_proc_beats: tile x10, first 10 s
_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
_IGNORED = ("predictor.", "quantize")  # the AudioSet classifier (AudioToken sets predictor = None); tokenizer parts


@dataclass(frozen=True)
class BEATsConfig:
    """The architecture fields of the checkpoint's ``cfg`` (defaults: BEATs_iter3+ AS2M fine-tuned, cpt2)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True

    @classmethod
    def from_checkpoint(cls, cfg: dict[str, Any]) -> BEATsConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in names})


# -- BEATs ----------------------------------------------------------------------------------------------
class MultiheadAttention(nn.Module):
    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        dim, heads = config.encoder_embed_dim, config.encoder_attention_heads
        self.num_heads, self.head_dim = heads, dim // heads
        self.num_buckets, self.max_distance = config.num_buckets, config.max_distance
        self.gru_rel_pos = config.gru_rel_pos
        if config.relative_position_embedding:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, heads)
        self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def relative_bucket(self, relative: torch.Tensor) -> torch.Tensor:
        """``_relative_positions_bucket(bidirectional=True)``: exact buckets near, log-spaced far."""
        half = self.num_buckets // 2
        buckets = (relative > 0).long() * half
        relative = relative.abs()
        exact = half // 2
        large = (
            exact + (torch.log(relative.float() / exact) / math.log(self.max_distance / exact) * (half - exact)).long()
        )
        large = torch.minimum(large, torch.full_like(large, half - 1))
        return buckets + torch.where(relative < exact, relative, large)

    def compute_bias(self, length: int) -> torch.Tensor:
        positions = torch.arange(length)
        buckets = self.relative_bucket(positions[None, :] - positions[:, None])
        return self.relative_attention_bias(buckets.to(self.relative_attention_bias.weight.device)).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        length, batch, dim = x.shape  # (T, B, C), the official layout

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(length, batch, self.num_heads, self.head_dim).permute(1, 2, 0, 3)  # (B, H, T, d)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        if hasattr(self, "relative_attention_bias") and position_bias is None:
            position_bias = self.compute_bias(length).unsqueeze(0).expand(batch, -1, -1, -1)  # (B, H, T, T)
        bias = position_bias
        if bias is not None and self.gru_rel_pos:
            gate_a, gate_b = torch.sigmoid(self.grep_linear(q).view(batch, self.num_heads, length, 2, 4).sum(-1)).chunk(
                2, dim=-1
            )
            bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype))
        return self.out_proj(attn.permute(2, 0, 1, 3).reshape(length, batch, dim)), position_bias


class TransformerSentenceEncoderLayer(nn.Module):
    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        self.self_attn = MultiheadAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, config.encoder_ffn_embed_dim), nn.Linear(config.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = config.layer_norm_first
        self.alpha = math.pow(2 * config.encoder_layers, 1 / 4) if config.deep_norm else 1.0

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x).float()).type_as(x))  # modules.gelu

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.layer_norm_first:
            attn, bias = self.self_attn(self.self_attn_layer_norm(x), bias)
            x = x + attn
            return x + self.ffn(self.final_layer_norm(x)), bias
        attn, bias = self.self_attn(x, bias)
        x = self.self_attn_layer_norm(x * self.alpha + attn)
        return self.final_layer_norm(x * self.alpha + self.ffn(x)), bias


class SamePad(nn.Module):
    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove else x


class TransformerEncoder(nn.Module):
    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        dim = config.encoder_embed_dim
        conv = nn.Conv1d(dim, dim, config.conv_pos, padding=config.conv_pos // 2, groups=config.conv_pos_groups)
        self.pos_conv = nn.Sequential(weight_norm(conv, name="weight", dim=2), SamePad(config.conv_pos), nn.GELU())
        self.layers = nn.ModuleList(TransformerSentenceEncoderLayer(config) for _ in range(config.encoder_layers))
        if config.relative_position_embedding:  # one bias table, shared (the checkpoint repeats it per layer)
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = config.layer_norm_first

    def forward(self, x: torch.Tensor, keep: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x, bias, kept = x.transpose(0, 1), None, {}
        for i, layer in enumerate(self.layers):
            x, bias = layer(x, bias)
            if i in keep:
                kept[i] = x.transpose(0, 1)
        x = x.transpose(0, 1)
        return (self.layer_norm(x) if self.layer_norm_first else x), [kept[i] for i in keep]


class BEATs(nn.Module):
    """Normalised filter banks (B, frames, 128) -> (last layer, [the kept layers' outputs]), each (B, patches, C)."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        self.config = config
        if config.embed_dim != config.encoder_embed_dim:
            self.post_extract_proj = nn.Linear(config.embed_dim, config.encoder_embed_dim)
        size = config.input_patch_size
        self.patch_embedding = nn.Conv2d(1, config.embed_dim, size, stride=size, bias=config.conv_bias)
        self.encoder = TransformerEncoder(config)
        self.layer_norm = nn.LayerNorm(config.embed_dim)

    def forward(self, fbank: torch.Tensor, keep: tuple[int, ...] = OFFICIAL_LAYERS) -> tuple[Any, list[torch.Tensor]]:
        features = self.patch_embedding(fbank.unsqueeze(1)).flatten(2).transpose(1, 2)
        features = self.layer_norm(features)
        if hasattr(self, "post_extract_proj"):
            features = self.post_extract_proj(features)
        return self.encoder(features, keep)


# -- the FGA embedder ---------------------------------------------------------------------------------
class Unary(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed, self.feature_reduce = nn.Conv1d(dim, dim, 1), nn.Conv1d(dim, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T) -> (B, T); official dropout: see the docstring
        return self.feature_reduce(F.relu(self.embed(x))).squeeze(1)


class Pairwise(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed_X, self.embed_Y = nn.Conv1d(dim, dim, 1), nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # self interaction, no spatial size: the mean similarity
        similarity = F.normalize(self.embed_X(x)).transpose(1, 2).bmm(F.normalize(self.embed_Y(x)))
        return similarity.mean(dim=2)


class Atten(nn.Module):
    """``Atten(util_e=[dim], pairwise_flag=False)``: one utility, unary + self potentials, no prior."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.un_models = nn.ModuleList([Unary(dim)])
        self.pp_models = nn.ModuleDict({"0": Pairwise(dim)})
        self.reduce_potentials = nn.ModuleList([nn.Conv1d(2, 1, 1, bias=False)])

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention over frames (B, T) of x (B, T, D)."""
        channels = x.transpose(1, 2)
        factors = torch.stack([self.un_models[0](channels), self.pp_models["0"](channels)], dim=1)  # (B, 2, T)
        return F.softmax(self.reduce_potentials[0](factors).squeeze(1), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x.transpose(1, 2), self.weights(x).unsqueeze(2)).squeeze(2)


class FGAEmbedder(nn.Module):
    def __init__(self, input_size: int = 768 * 3, output_size: int = 768) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(input_size, input_size), nn.Linear(input_size, output_size)
        self.gelu = nn.GELU()
        self.fga = Atten(output_size)

    def forward(self, audio_embs: torch.Tensor) -> torch.Tensor:
        return self.fga(self.fc2(self.gelu(self.fc1(audio_embs))))


class AudioTokenEncoder(nn.Module):
    """BEATs + the embedder: a waveform at 16 kHz -> the pseudo-word embedding (B, text width)."""

    def __init__(self, beats: BEATs, embedder: FGAEmbedder, layers: tuple[int, ...] = OFFICIAL_LAYERS) -> None:
        super().__init__()
        self.beats, self.embedder, self.layers = beats, embedder, tuple(layers)

    def features(self, waveform: np.ndarray) -> torch.Tensor:
        """``extract_features(audio)[1]``: the kept layers' outputs concatenated on channels (1, patches, 3C)."""
        parameter = next(self.beats.parameters())
        fbank = filter_banks(waveform).to(parameter.device, parameter.dtype)
        return torch.cat(self.beats(fbank, self.layers)[1], dim=2)

    @torch.no_grad()
    def forward(self, waveform: np.ndarray) -> torch.Tensor:
        return self.embedder(self.features(waveform))


# -- the front end ------------------------------------------------------------------------------------
def official_clip(waveform: np.ndarray) -> np.ndarray:
    """``aud_proc_beats`` at test time: the clip tiled 10 times, its first 10 s (a 16 kHz mono waveform)."""
    return np.tile(waveform, TILES)[: SAMPLING_RATE * CLIP_SECONDS]


def filter_banks(waveform: np.ndarray) -> torch.Tensor:
    """(1, frames, 128): ``BEATs.preprocess`` (torchaudio ``kaldi.fbank`` of x 2^15, povey window, then the
    mean/std normalisation) computed with transformers' audio_utils, as ``ASTFeatureExtractor`` does."""
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    with warnings.catch_warnings():  # Kaldi's lowest of 128 bands are empty at a 512-point FFT, as in BEATs
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        mel = mel_filter_bank(
            num_frequency_bins=257,
            num_mel_filters=128,
            min_frequency=20,
            max_frequency=SAMPLING_RATE // 2,
            sampling_rate=SAMPLING_RATE,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
    fbank = spectrogram(
        np.asarray(waveform, dtype=np.float32) * 2**15,
        window_function(400, "povey", periodic=False),
        frame_length=400,
        hop_length=160,
        fft_length=512,
        power=2.0,
        center=False,
        preemphasis=0.97,
        mel_filters=mel,
        log_mel="log",
        mel_floor=1.192092955078125e-07,
        remove_dc_offset=True,
    ).T
    return ((torch.from_numpy(fbank).float() - FBANK_MEAN) / (2 * FBANK_STD)).unsqueeze(0)


# -- weights ------------------------------------------------------------------------------------------
def from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A BEATs checkpoint's ``model`` entries as this port names them (weight-norm renamed, predictor dropped)."""
    renamed = {}
    for key, value in state.items():
        if key.startswith(_IGNORED):
            continue
        stem, _, leaf = key.rpartition(".")
        renamed[f"{stem}.{_WEIGHT_NORM[leaf]}" if leaf in _WEIGHT_NORM else key] = value
    return renamed


def to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    back = {v: k for k, v in _WEIGHT_NORM.items()}
    out = {}
    for key, value in state.items():
        for new, old in back.items():
            if key.endswith(new):
                key = key[: -len(new)] + old
        out[key] = value
    return out


def load_beats(path: Path) -> BEATs:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = BEATs(BEATsConfig.from_checkpoint(checkpoint["cfg"]))
    model.load_state_dict(from_official(checkpoint["model"]), strict=True, assign=True)
    return model


def load_embedder(path: Path) -> FGAEmbedder:
    state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        embedder = FGAEmbedder(state["fc1.weight"].shape[1], state["fc2.weight"].shape[0])
    embedder.load_state_dict(state, strict=True, assign=True)
    return embedder


def load_audiotoken(location: str, device: torch.device, dtype: torch.dtype) -> AudioTokenEncoder:
    """From a folder (tiny / custom builds) or the official URLs (BEATs' link, AudioToken's raw GitHub file)."""
    if "://" in location:
        from methods.core.loading import url_file

        beats_path, embedder_path = url_file(location), url_file(EMBEDDER_URL)
    else:
        beats_path, embedder_path = Path(location) / BEATS_FILE, Path(location) / EMBEDDER_FILE
    config = beats_path.parent / CONFIG_FILE
    layers = json.loads(config.read_text())["feature_layers"] if config.exists() else OFFICIAL_LAYERS
    encoder = AudioTokenEncoder(load_beats(beats_path), load_embedder(embedder_path), tuple(layers))
    return encoder.to(device, dtype).eval().requires_grad_(False)


def save_audiotoken(encoder: AudioTokenEncoder, folder: Path) -> None:
    """Both files in the official formats (``{"cfg", "model"}`` .pt; a bare state dict .bin) + the layers."""
    folder.mkdir(parents=True, exist_ok=True)
    state = to_official(encoder.beats.state_dict())
    torch.save({"cfg": asdict(encoder.beats.config), "model": state}, folder / BEATS_FILE)
    torch.save(encoder.embedder.state_dict(), folder / EMBEDDER_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps({"feature_layers": list(encoder.layers)}))


def init_seeded(module: nn.Module, generator: torch.Generator) -> None:
    """Seeded random weights: normal(0, fan_in^-1/2) matrices, unit norms, zero biases, weight-norm g = |v|."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.ndim == 1:
                parameter.fill_(1.0 if "norm" in name else 0.0)
            elif name.endswith("grep_a"):
                parameter.fill_(1.0)
            else:
                fan_in = parameter[0].numel() if parameter.ndim > 1 else 1
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * fan_in**-0.5)
        for conv in (m for m in module.modules() if hasattr(m, "parametrizations")):
            g, v = conv.parametrizations.weight.original0, conv.parametrizations.weight.original1
            g.copy_(torch.norm_except_dim(v, 2, 2))
