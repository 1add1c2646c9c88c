"""The add-on table: every model a method may borrow, by name.

Each entry names the real checkpoint (model id + subfolder/file, overridable with HUB_ADDON_<NAME>),
the loader that reads it (the same for real and tiny weights), and the tiny builder that writes a
random-weight copy in the same layout for the tiny profile.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from methods.core import tiny

if TYPE_CHECKING:
    from methods.core.backbone import Backbone


@dataclass(frozen=True)
class WeightsFile:
    """Weights that a diffusers loader (e.g. ``load_ip_adapter``) reads itself, by location."""

    location: str
    subfolder: str
    weight_name: str


@dataclass(frozen=True)
class AddonSpec:
    name: str
    description: str
    repo: str
    load: Callable[[str, AddonSpec, Backbone], Any]
    build_tiny: Callable[[Path], None]
    subfolder: str | None = None
    weight_name: str | None = None


def _frozen_model(class_path: str) -> Callable[[str, AddonSpec, Backbone], Any]:
    """A loader for one ``from_pretrained`` model class ("package.Class", imported at first load): the
    checkpoint in the backbone's dtype, on its device, in eval mode with gradients off."""

    def load(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
        module, name = class_path.rsplit(".", 1)
        model_class = getattr(importlib.import_module(module), name)
        model = model_class.from_pretrained(location, subfolder=spec.subfolder, dtype=backbone.dtype)
        return model.to(backbone.device).eval().requires_grad_(False)

    return load


_unet = _frozen_model("diffusers.UNet2DConditionModel")
_controlnet = _frozen_model("diffusers.ControlNetModel")
_t2i_adapter = _frozen_model("diffusers.T2IAdapter")
_image_encoder = _frozen_model("transformers.CLIPVisionModelWithProjection")


def _weights_file(location: str, spec: AddonSpec, backbone: Backbone) -> WeightsFile:
    return WeightsFile(location, spec.subfolder or "", spec.weight_name or "")


def _clap(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    from transformers import ClapModel, ClapProcessor

    # CLAP is small and its audio front end is sensitive to half precision: keep it in float32.
    model = ClapModel.from_pretrained(location).to(backbone.device).eval().requires_grad_(False)
    return model, ClapProcessor.from_pretrained(location)


def _dit(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    transformer = DiTTransformer2DModel.from_pretrained(location, subfolder="transformer", dtype=backbone.dtype)
    scheduler = DDIMScheduler.from_pretrained(location, subfolder="scheduler")
    return transformer.to(backbone.device).eval().requires_grad_(False), scheduler


def _openpose(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    from controlnet_aux.open_pose import OpenposeDetector

    return OpenposeDetector.from_pretrained(location).to(backbone.device)


def _metric_clip(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    import torch
    from transformers import CLIPModel, CLIPProcessor

    # Metric models stay in float32 on every device, so scores do not depend on the backbone's dtype.
    model = CLIPModel.from_pretrained(location, dtype=torch.float32).to(backbone.device).eval()
    return model.requires_grad_(False), CLIPProcessor.from_pretrained(location)


def _metric_dino(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    import torch
    from transformers import ViTImageProcessor, ViTModel

    model = ViTModel.from_pretrained(location, add_pooling_layer=False, dtype=torch.float32).to(backbone.device).eval()
    return model.requires_grad_(False), ViTImageProcessor.from_pretrained(location)


def _metric_lpips(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """A folder holding ``lpips_<net>.pth`` (a whole torchmetrics LPIPS state dict), or ``lpips:<net>``."""
    import torch
    from torchmetrics.functional.image.lpips import _LPIPS

    if location.startswith("lpips:"):
        # torchvision's ImageNet trunk (torchvision fetches it once into the torch cache) + torchmetrics' heads.
        network = _LPIPS(pretrained=True, net=location.split(":", 1)[1], pnet_rand=False)
    else:
        net = spec.weight_name or "alex"
        network = _LPIPS(pretrained=False, net=net, pnet_rand=True)
        state = torch.load(Path(location) / f"lpips_{net}.pth", map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    return network.to(backbone.device).eval().requires_grad_(False)


def _paint_by_example_encoder(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """PaintByExampleImageEncoder (its config is a CLIPVisionConfig) and the CLIPImageProcessor beside it."""
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    config = CLIPVisionConfig.from_pretrained(location, subfolder=spec.subfolder)
    model = PaintByExampleImageEncoder.from_pretrained(
        location, subfolder=spec.subfolder, config=config, dtype=backbone.dtype
    )
    processor = CLIPImageProcessor.from_pretrained(location, subfolder="feature_extractor")
    return model.to(backbone.device).eval().requires_grad_(False), processor


def _sam(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """Segment Anything: the architecture from its config, then the plain state-dict file (real or tiny)."""
    from methods.core import sam

    weights = sam.weights_path(location, spec.weight_name or sam.VIT_B_FILE)
    return sam.load_sam(weights, sam.config_beside(weights), backbone.device)


def _semantic_segmenter(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """A transformers semantic segmenter (UperNet, SegFormer...) and its image processor, in float32 so the
    argmax over classes does not depend on the backbone's dtype."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    model = AutoModelForSemanticSegmentation.from_pretrained(location, dtype=torch.float32)
    return model.to(backbone.device).eval().requires_grad_(False), AutoImageProcessor.from_pretrained(location)


def _line_annotator(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """A controlnet_aux line / edge annotator (lineart, HED, PiDiNet) from its .pth files (real or tiny)."""
    from methods.core.annotators import load_line_annotator

    return load_line_annotator(spec.name, location, backbone.device)


ADDONS: dict[str, AddonSpec] = {
    spec.name: spec
    for spec in (
        AddonSpec(
            "inpaint_unet",
            "SD 1.5 inpainting UNet (9 input channels)",
            "stable-diffusion-v1-5/stable-diffusion-inpainting",
            _unet,
            tiny.build_inpaint_unet,
            subfolder="unet",
        ),
        AddonSpec(
            "controlnet_openpose",
            "ControlNet v1.1 OpenPose",
            "lllyasviel/control_v11p_sd15_openpose",
            _controlnet,
            tiny.build_controlnet_openpose,
        ),
        AddonSpec(
            "controlnet_scribble",
            "ControlNet v1.1 Scribble",
            "lllyasviel/control_v11p_sd15_scribble",
            _controlnet,
            tiny.build_controlnet_scribble,
        ),
        AddonSpec(
            "controlnet_seg",
            "ControlNet v1.1 Segmentation (ADE20K colours)",
            "lllyasviel/control_v11p_sd15_seg",
            _controlnet,
            tiny.build_controlnet_seg,
        ),
        AddonSpec(
            "ip_adapter",
            "IP-Adapter SD 1.5 weights",
            "h94/IP-Adapter",
            _weights_file,
            tiny.build_ip_adapter,
            subfolder="models",
            weight_name="ip-adapter_sd15.safetensors",
        ),
        AddonSpec(
            "ip_adapter_image_encoder",
            "IP-Adapter's CLIP ViT-H image encoder",
            "h94/IP-Adapter",
            _image_encoder,
            tiny.build_ip_adapter_image_encoder,
            subfolder="models/image_encoder",
        ),
        AddonSpec(
            "gligen_unet",
            "GLIGEN text-box generation UNet (SD 1.4 + gated attention)",
            "masterful/gligen-1-4-generation-text-box",
            _unet,
            tiny.build_gligen_unet,
            subfolder="unet",
        ),
        AddonSpec(
            "gligen_inpaint_unet",
            "GLIGEN text-box inpainting UNet",
            "masterful/gligen-1-4-inpainting-text-box",
            _unet,
            tiny.build_gligen_inpaint_unet,
            subfolder="unet",
        ),
        AddonSpec(
            "clap", "CLAP audio-text model (HTS-AT, unfused)", "laion/clap-htsat-unfused", _clap, tiny.build_clap
        ),
        AddonSpec(
            "dit",
            "DiT-XL/2 class-conditional transformer (ImageNet 256)",
            "facebook/DiT-XL-2-256",
            _dit,
            tiny.build_dit,
        ),
        AddonSpec(
            "openpose", "OpenPose body/hand/face annotator", "lllyasviel/Annotators", _openpose, tiny.build_openpose
        ),
        # -- text methods (issue 3) --
        AddonSpec(
            "instruct_pix2pix_unet",
            "InstructPix2Pix UNet (8 input channels: noisy latent + photo latent)",
            "timbrooks/instruct-pix2pix",
            _unet,
            tiny.build_instruct_pix2pix_unet,
            subfolder="unet",
        ),
        # -- mask methods (issue 4) --
        AddonSpec(
            "sam",
            "Segment Anything ViT-B (click-to-segment masks)",
            "ybelkada/segment-anything",
            _sam,
            tiny.build_sam,
            weight_name="checkpoints/sam_vit_b_01ec64.pth",
        ),
        # -- reference methods (issue 4) --
        AddonSpec(
            "paint_by_example_unet",
            "Paint-by-Example UNet (9 input channels, conditioned on an exemplar image)",
            "Fantasy-Studio/Paint-by-Example",
            _unet,
            tiny.build_paint_by_example_unet,
            subfolder="unet",
        ),
        AddonSpec(
            "paint_by_example_image_encoder",
            "Paint-by-Example exemplar encoder (CLIP ViT-L/14 + mapper) and its image processor",
            "Fantasy-Studio/Paint-by-Example",
            _paint_by_example_encoder,
            tiny.build_paint_by_example_image_encoder,
            subfolder="image_encoder",
        ),
        # -- pose / sketch / segmentation (issue 5) --
        AddonSpec(
            "controlnet_lineart",
            "ControlNet v1.1 Lineart",
            "lllyasviel/control_v11p_sd15_lineart",
            _controlnet,
            tiny.build_controlnet_lineart,
        ),
        AddonSpec(
            "t2i_adapter_openpose",
            "T2I-Adapter OpenPose (trained on SD 1.4)",
            "TencentARC/t2iadapter_openpose_sd14v1",
            _t2i_adapter,
            tiny.build_t2i_adapter_openpose,
        ),
        AddonSpec(
            "t2i_adapter_sketch",
            "T2I-Adapter Sketch (grey edge maps; trained on SD 1.4)",
            "TencentARC/t2iadapter_sketch_sd14v1",
            _t2i_adapter,
            tiny.build_t2i_adapter_sketch,
        ),
        AddonSpec(
            "annotator_lineart",
            "Lineart annotator (controlnet_aux LineartDetector: sk_model.pth + sk_model2.pth)",
            "lllyasviel/Annotators",
            _line_annotator,
            tiny.build_annotator_lineart,
        ),
        AddonSpec(
            "annotator_hed",
            "HED soft-edge annotator (controlnet_aux HEDdetector: ControlNetHED.pth)",
            "lllyasviel/Annotators",
            _line_annotator,
            tiny.build_annotator_hed,
        ),
        AddonSpec(
            "annotator_pidinet",
            "PiDiNet soft-edge annotator (controlnet_aux PidiNetDetector: table5_pidinet.pth)",
            "lllyasviel/Annotators",
            _line_annotator,
            tiny.build_annotator_pidinet,
        ),
        AddonSpec(
            "t2i_adapter_seg",
            "T2I-Adapter Segmentation (trained on COCO-Stuff colour maps with SD 1.4)",
            "TencentARC/t2iadapter_seg_sd14v1",
            _t2i_adapter,
            tiny.build_t2i_adapter_seg,
        ),
        AddonSpec(
            "ade20k_segmenter",
            "UperNet ConvNeXt-S semantic segmenter (ADE20K, 150 classes) for maps from photos",
            "openmmlab/upernet-convnext-small",
            _semantic_segmenter,
            tiny.build_ade20k_segmenter,
        ),
        # -- metrics (issue 6) --
        AddonSpec(
            "metric_clip",
            "CLIP ViT-L/14 for CLIP score and CLIP directional similarity (evaluation)",
            "openai/clip-vit-large-patch14",
            _metric_clip,
            tiny.build_metric_clip,
        ),
        AddonSpec(
            "metric_dino",
            "DINO ViT-S/8 for the self-similarity structure distance (evaluation)",
            "facebook/dino-vits8",
            _metric_dino,
            tiny.build_metric_dino,
        ),
        AddonSpec(
            "metric_lpips",
            "LPIPS (AlexNet trunk + linear heads, torchmetrics) for perceptual preservation (evaluation)",
            "lpips:alex",
            _metric_lpips,
            tiny.build_metric_lpips,
            weight_name="alex",
        ),
    )
}


def get_addon_spec(name: str) -> AddonSpec:
    try:
        return ADDONS[name]
    except KeyError:
        raise KeyError(f"unknown add-on {name!r}; known add-ons: {', '.join(sorted(ADDONS))}") from None
