"""Per-cell metrics: text alignment, edit direction, preservation of the source, structure.

UI hook (for the "show metrics" toggle in ``demos/common.py``)::

    metrics_table(backbone, comparison, inputs, metrics=DEFAULT_METRICS) -> pandas.DataFrame

One row per method of ``comparison`` (``methods.core.runner.Comparison``, in run order) and the
``EditInputs`` it was run with; columns ``method`` (the method's label), ``status``, then one float column
per metric name in ``metrics`` (headings in ``METRICS[name].label``), NaN where a metric does not apply
(no source image, no source prompt, empty prompt) or the method produced no image. The metric models are add-ons of the
backbone (``metric_clip``, ``metric_dino``, ``metric_lpips``), loaded at the first call.

For one cell::

    score_cell(backbone, source, edited, target_prompt, source_prompt=None, mask=None,
               metrics=DEFAULT_METRICS) -> dict[str, float]

returns only the metrics that apply. Definitions:

- ``clip_score``: 100 x max(cos(CLIP image(edited), CLIP text(target prompt)), 0) (Hessel et al. 2021;
  the formula of torchmetrics' ``clip_score``, which cannot be called directly with transformers 5, whose
  ``get_image_features`` returns a model output instead of a tensor).
- ``clip_directional``: cos(I(edited) - I(source), T(target) - T(source)) (Gal et al. 2022, StyleGAN-NADA).
- ``lpips`` (lower is better), ``ssim``, ``psnr`` (dB, identical images give ``PSNR_CAP``): preservation
  of the source. With a mask (255 = region to edit) they are restricted to the pixels outside it: the
  masked region is made identical in both images (the source's pixels are pasted into the edited image;
  zeroing the region in both would do the same), and the per-pixel maps (squared error, SSIM map, LPIPS spatial map)
  are averaged over the outside pixels only. Pasting, not just averaging, matters for SSIM and LPIPS:
  their windows and receptive fields near the border would otherwise see the edit inside the mask.
  Without a mask the values equal torchmetrics' (SSIM: Gaussian window 11, sigma 1.5, data range 1).
- ``structure_dist`` (lower is better): Frobenius distance between the cosine self-similarity matrices
  of the keys of the last DINO ViT layer for the two whole images (Tumanyan et al. 2022, "Splicing ViT
  Features"; all tokens including CLS, heads concatenated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

if TYPE_CHECKING:
    import pandas as pd

    from methods.core.backbone import Backbone
    from methods.core.runner import Comparison
    from methods.core.spec import EditInputs

PSNR_CAP = 100.0  # dB, reported for identical images (an 8-bit, 512 px image one level off somewhere: ~107 dB)


@dataclass(frozen=True)
class MetricInfo:
    label: str
    higher_is_better: bool
    needs_source: bool
    addon: str | None


METRICS: dict[str, MetricInfo] = {
    "clip_score": MetricInfo("CLIP score ↑", True, False, "metric_clip"),
    "clip_directional": MetricInfo("CLIP directional ↑", True, True, "metric_clip"),
    "lpips": MetricInfo("LPIPS ↓", False, True, "metric_lpips"),
    "ssim": MetricInfo("SSIM ↑", True, True, None),
    "psnr": MetricInfo("PSNR (dB) ↑", True, True, None),
    "structure_dist": MetricInfo("Structure dist. ↓", False, True, "metric_dino"),
}
DEFAULT_METRICS: tuple[str, ...] = tuple(METRICS)


# -- image helpers ----------------------------------------------------------------------------------------
def to_tensor(image: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB PIL -> (1, 3, H, W) float32 in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].to(device)


def _match_size(edited: Image.Image, source: Image.Image) -> Image.Image:
    return edited if edited.size == source.size else edited.resize(source.size, Image.Resampling.BICUBIC)


def keep_map(mask: Image.Image | None, size: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 1, H, W) bool: True where the metric looks (outside the mask; everywhere without one)."""
    if mask is None:
        return torch.ones(1, 1, size[1], size[0], dtype=torch.bool, device=device)
    array = np.asarray(mask.convert("L").resize(size, Image.Resampling.NEAREST)) < 128
    return torch.from_numpy(array)[None, None].to(device)


def _outside_view(
    source: Image.Image, edited: Image.Image, mask: Image.Image | None, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source, edited with the source pasted inside the mask, and the keep map (all on ``device``)."""
    edited = _match_size(edited, source)
    a, b = to_tensor(source, device), to_tensor(edited, device)
    keep = keep_map(mask, source.size, device)
    return a, torch.where(keep, b, a), keep


def _masked_mean(values: torch.Tensor, keep: torch.Tensor) -> float:
    weights = keep.expand_as(values).to(values.dtype)
    return float((values * weights).sum() / weights.sum())


# -- preservation -----------------------------------------------------------------------------------------
def psnr(source: Image.Image, edited: Image.Image, mask: Image.Image | None = None) -> float:
    a, b, keep = _outside_view(source, edited, mask, "cpu")
    mse = _masked_mean((a.double() - b.double()) ** 2, keep)
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse))


def ssim(source: Image.Image, edited: Image.Image, mask: Image.Image | None = None) -> float:
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b, keep = _outside_view(source, edited, mask, "cpu")
    value, full = structural_similarity_index_measure(b, a, data_range=1.0, return_full_image=True)
    return float(value) if mask is None else _masked_mean(full, keep)


def lpips_map(network: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torchmetrics' LPIPS forward with ``spatial=True``: (N, 1, H, W) distances for inputs in [0, 1]."""
    from torchmetrics.functional.image.lpips import _normalize_tensor, _upsample

    x0, x1 = network.scaling_layer(2 * a - 1), network.scaling_layer(2 * b - 1)
    features0, features1 = network.net(x0), network.net(x1)
    total = torch.zeros_like(a[:, :1])
    for k in range(network.L):
        diff = (_normalize_tensor(features0[k]) - _normalize_tensor(features1[k])) ** 2
        total = total + _upsample(network.lins[k](diff), out_hw=tuple(a.shape[2:]))
    return total


@torch.no_grad()
def lpips(backbone: Backbone, source: Image.Image, edited: Image.Image, mask: Image.Image | None = None) -> float:
    network = backbone.addon("metric_lpips")
    a, b, keep = _outside_view(source, edited, mask, backbone.device)
    if mask is None:  # torchmetrics' own value (mean of the per-layer spatial averages)
        return float(network(a, b, normalize=True).squeeze())
    return _masked_mean(lpips_map(network, a, b), keep)


# -- CLIP ---------------------------------------------------------------------------------------------------
def _features(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; older versions a tensor."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


@torch.no_grad()
def clip_embeddings(
    backbone: Backbone, images: Sequence[Image.Image] = (), texts: Sequence[str] = ()
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Unit-norm CLIP embeddings (float32) of images and texts, on the backbone's device."""
    model, processor = backbone.addon("metric_clip")
    image_features = text_features = None
    if images:
        pixels = processor(images=[i.convert("RGB") for i in images], return_tensors="pt")["pixel_values"]
        image_features = F.normalize(_features(model.get_image_features(pixel_values=pixels.to(backbone.device))))
    if texts:
        tokens = processor(text=list(texts), return_tensors="pt", padding=True, truncation=True, max_length=77)
        tokens = {key: tokens[key].to(backbone.device) for key in ("input_ids", "attention_mask")}
        text_features = F.normalize(_features(model.get_text_features(**tokens)))
    return image_features, text_features


def clip_similarity(backbone: Backbone, image: Image.Image, text: str) -> float:
    """100 x cosine of the CLIP image and text embeddings, before the CLIP score's clamp at 0."""
    image_features, text_features = clip_embeddings(backbone, [image], [text])
    return 100.0 * float((image_features * text_features).sum())


def clip_score(backbone: Backbone, image: Image.Image, text: str) -> float:
    return max(clip_similarity(backbone, image, text), 0.0)


def clip_directional(
    backbone: Backbone, source: Image.Image, edited: Image.Image, source_prompt: str, target_prompt: str
) -> float:
    """Cosine between the image change and the caption change; NaN when the image did not change at all."""
    images, texts = clip_embeddings(backbone, [source, edited], [source_prompt, target_prompt])
    return _direction_cosine(images[1] - images[0], texts[1] - texts[0])


# -- DINO structure ---------------------------------------------------------------------------------------
@torch.no_grad()
def dino_keys(backbone: Backbone, images: Sequence[Image.Image], layer: int = -1) -> torch.Tensor:
    """(N, tokens, dim) keys of one DINO ViT layer (heads concatenated), read off the layer's own modules."""
    model, processor = backbone.addon("metric_dino")
    pixels = processor(images=[i.convert("RGB") for i in images], return_tensors="pt")["pixel_values"]
    output = model(pixel_values=pixels.to(backbone.device), output_hidden_states=True)
    index = layer % model.config.num_hidden_layers
    block = model.layers[index]
    # hidden_states[i] is the input of layer i; ViTLayer normalises it before its attention projections.
    return block.attention.k_proj(block.layernorm_before(output.hidden_states[index]))


def self_similarity(keys: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(keys, dim=-1)
    return unit @ unit.transpose(-1, -2)


def structure_distance(backbone: Backbone, source: Image.Image, edited: Image.Image) -> float:
    similarity = self_similarity(dino_keys(backbone, [source, _match_size(edited, source)]))
    return float(torch.linalg.matrix_norm(similarity[0] - similarity[1], ord="fro"))


# -- one cell, one comparison -----------------------------------------------------------------------------
def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known metrics: {', '.join(METRICS)}")
    return tuple(metrics)


def score_cell(
    backbone: Backbone,
    source: Image.Image | None,
    edited: Image.Image,
    target_prompt: str,
    source_prompt: str | None = None,
    mask: Image.Image | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """The metrics of one edited image that apply to the inputs (see the module docstring)."""
    metrics = check_metrics(metrics)
    scores: dict[str, float] = {}
    wanted = [m for m in metrics if source is not None or not METRICS[m].needs_source]
    if {"clip_score", "clip_directional"} & set(wanted):
        scores.update(_clip_metrics(backbone, source, edited, target_prompt, source_prompt or "", wanted))
    if source is None:
        return {name: scores[name] for name in metrics if name in scores}
    outside = mask is None or bool(keep_map(mask, source.size).any())  # a mask over everything keeps nothing
    for name in wanted:
        if name == "lpips" and outside:
            scores[name] = lpips(backbone, source, edited, mask)
        elif name == "ssim" and outside:
            scores[name] = ssim(source, edited, mask)
        elif name == "psnr" and outside:
            scores[name] = psnr(source, edited, mask)
        elif name == "structure_dist":
            scores[name] = structure_distance(backbone, source, edited)
    return {name: scores[name] for name in metrics if name in scores}


def _clip_metrics(
    backbone: Backbone,
    source: Image.Image | None,
    edited: Image.Image,
    target_prompt: str,
    source_prompt: str,
    wanted: Sequence[str],
) -> dict[str, float]:
    """CLIP score and directional similarity from one pass over the images and prompts."""
    directional = "clip_directional" in wanted and source is not None and bool(source_prompt and target_prompt)
    if not target_prompt:
        return {}
    images = [edited, source] if directional else [edited]
    texts = [target_prompt, source_prompt] if directional else [target_prompt]
    image_features, text_features = clip_embeddings(backbone, images, texts)
    scores = {}
    if "clip_score" in wanted:
        scores["clip_score"] = max(100.0 * float((image_features[0] * text_features[0]).sum()), 0.0)
    if directional:
        value = _direction_cosine(image_features[0] - image_features[1], text_features[0] - text_features[1])
        if not math.isnan(value):
            scores["clip_directional"] = value
    return scores


def _direction_cosine(image_direction: torch.Tensor, text_direction: torch.Tensor) -> float:
    """NaN when either direction is (numerically) zero: an unchanged image or identical prompts."""
    if float(image_direction.norm()) < 1e-6 or float(text_direction.norm()) < 1e-6:
        return math.nan
    return float(F.cosine_similarity(image_direction, text_direction, dim=0))


def metrics_table(
    backbone: Backbone, comparison: Comparison, inputs: EditInputs, metrics: Sequence[str] = DEFAULT_METRICS
) -> pd.DataFrame:
    """Rows = the comparison's methods; columns method, status, then the metrics (NaN where none)."""
    import pandas as pd

    metrics = check_metrics(metrics)
    rows = []
    for record in comparison.records:
        row: dict[str, Any] = {"method": record["label"], "status": record["status"]}
        scores: dict[str, float] = {}
        if record["status"] == "ok":
            scores = score_cell(
                backbone,
                inputs.image,
                comparison.result(record["method"]),
                inputs.prompt,
                inputs.source_prompt or None,
                inputs.mask,
                metrics,
            )
        row.update({name: scores.get(name, math.nan) for name in metrics})
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "status", *metrics])
