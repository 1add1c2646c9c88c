"""Segment Anything (Kirillov et al., ICCV 2023, https://arxiv.org/abs/2304.02643): click-to-segment masks.

One loading path for the real and the tiny model: build the architecture from a :class:`SamConfig` out of
``segment_anything.modeling`` (the same classes and module names as ``sam_model_registry``), then
``load_state_dict(torch.load(path, weights_only=True))``. The real add-on is the public ViT-B checkpoint
(a plain state dict, the file ``sam_model_registry["vit_b"](checkpoint=...)`` reads); the tiny one is a
small config with seeded random weights written by ``methods.core.addons.tiny_annotators.build_sam`` as a
state-dict file in the same layout, with its config beside it. Prompts (positive / negative clicks, a box) go through
``segment_anything.SamPredictor``, whose image embedding is cached per image.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

CONFIG_FILE = "sam_config.json"  # written beside the weights by the tiny builder; absent = ViT-B
VIT_B_FILE = "checkpoints/sam_vit_b_01ec64.pth"  # the public ViT-B checkpoint's name in its model repo


@dataclass(frozen=True)
class SamConfig:
    """The sizes ``segment_anything.build_sam._build_sam`` fixes, as fields (defaults: ViT-B)."""

    image_size: int = 1024
    patch_size: int = 16
    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    window_size: int = 14
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, ...] = field(default=(123.675, 116.28, 103.53))
    pixel_std: tuple[float, ...] = field(default=(58.395, 57.12, 57.375))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SamConfig:
        values = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


VIT_B = SamConfig()


def build_sam(config: SamConfig) -> Any:
    """The SAM architecture for ``config``, random weights (as ``_build_sam``, with the sizes as fields)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = config.image_size // config.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=config.encoder_depth,
            embed_dim=config.encoder_embed_dim,
            img_size=config.image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=config.encoder_num_heads,
            patch_size=config.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=config.encoder_global_attn_indexes,
            window_size=config.window_size,
            out_chans=config.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_embed_dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_num_heads,
            ),
            transformer_dim=config.prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
        pixel_mean=list(config.pixel_mean),
        pixel_std=list(config.pixel_std),
    ).eval()


def load_sam(weights: Path | str, config: SamConfig, device: torch.device | str = "cpu") -> Any:
    """Construct the architecture and load a plain state-dict file into it (strict: every name must match)."""
    sam = build_sam(config)
    sam.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return sam.to(device).eval().requires_grad_(False)


def weights_path(location: str, weight_name: str = VIT_B_FILE) -> Path:
    """The state-dict file: a local file, ``weight_name`` inside a local folder, or from a hub model repo."""
    path = Path(location)
    if path.is_file():
        return path
    if path.is_dir():
        return path / weight_name
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(location, weight_name))


def config_beside(weights: Path) -> SamConfig:
    """The config written beside the weights (tiny or custom models), else ViT-B (the public checkpoint)."""
    for folder in (weights.parent, weights.parent.parent):
        if (folder / CONFIG_FILE).exists():
            return SamConfig.from_json((folder / CONFIG_FILE).read_text())
    return VIT_B


def save_sam(sam: Any, config: SamConfig, folder: Path, weight_name: str) -> Path:
    """Write ``sam``'s state dict as ``folder/weight_name`` and its config beside the folder root."""
    path = folder / weight_name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sam.state_dict(), path)
    (folder / CONFIG_FILE).write_text(config.to_json())
    return path


@dataclass
class Candidate:
    mask: np.ndarray  # bool, the image's height x width
    score: float  # SAM's predicted IoU


class Segmenter:
    """``SamPredictor`` for one model, with the embedding of the last image kept (clicks are cheap)."""

    def __init__(self, sam: Any) -> None:
        from segment_anything import SamPredictor

        self.sam = sam
        self.predictor = SamPredictor(sam)
        self._image_key: str | None = None
        self._lock = threading.Lock()

    def predict(
        self,
        image: Image.Image,
        points: list[tuple[float, float, int]],
        box: tuple[float, float, float, float] | None = None,
    ) -> list[Candidate]:
        """Candidate masks (SAM's three, multimask output) for clicks in pixels: (x, y, 1 = object / 0 = not)."""
        if not points and box is None:
            return []
        rgb = np.asarray(image.convert("RGB"))
        key = hashlib.sha1(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
        with self._lock:
            if key != self._image_key:
                self.predictor.set_image(rgb)
                self._image_key = key
            coords = np.array([[x, y] for x, y, _ in points], dtype=np.float32) if points else None
            labels = np.array([label for _, _, label in points], dtype=np.int64) if points else None
            masks, scores, _ = self.predictor.predict(
                point_coords=coords,
                point_labels=labels,
                box=np.array(box, dtype=np.float32) if box is not None else None,
                multimask_output=True,
            )
        return [Candidate(m.astype(bool), float(s)) for m, s in zip(masks, scores, strict=True)]


def segmenter(backbone: Backbone) -> Segmenter:
    """The backbone's segmenter over its (lazily loaded, possibly reloaded) SAM add-on."""
    sam = backbone.addon("sam")
    holder: dict[str, Segmenter] = backbone.cache("sam_segmenter", dict)
    if "current" not in holder or holder["current"].sam is not sam:
        holder["current"] = Segmenter(sam)
    return holder["current"]
