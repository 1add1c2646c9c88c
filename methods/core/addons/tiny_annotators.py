"""Tiny builders for ``annotators``: controlnet_aux's networks at full architecture with random weights under
the real file names, a tiny Segment Anything and a tiny UperNet with the ADE20K labels."""

from __future__ import annotations

from pathlib import Path

import torch

from methods.core.tiny import TINY_SIZE, _seeded


def build_openpose(folder: Path) -> None:
    """controlnet_aux's body / hand / face networks at full architecture, random weights (.pth files)."""
    from controlnet_aux.open_pose.body import bodypose_model
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.hand import handpose_model

    folder.mkdir(parents=True, exist_ok=True)
    _seeded(500)
    for network, filename, strip_prefix in (
        (bodypose_model(), "body_pose_model.pth", True),
        (handpose_model(), "hand_pose_model.pth", True),
        (FaceNet(), "facenet.pth", False),
    ):
        state = network.state_dict()
        if strip_prefix:  # controlnet_aux's `transfer` re-adds the first name component
            state = {".".join(k.split(".")[1:]): v for k, v in state.items()}
        torch.save(state, folder / filename)


def build_annotator_lineart(folder: Path) -> None:
    """controlnet_aux's lineart generators (fine + coarse) at full size, random weights, real file names."""
    from controlnet_aux.lineart import Generator

    folder.mkdir(parents=True, exist_ok=True)
    _seeded(910)
    for filename in ("sk_model.pth", "sk_model2.pth"):
        torch.save(Generator(3, 1, 3).state_dict(), folder / filename)


def build_annotator_hed(folder: Path) -> None:
    """controlnet_aux's HED (ControlNetHED_Apache2) at full size, random weights, as ControlNetHED.pth."""
    from controlnet_aux.hed import ControlNetHED_Apache2

    folder.mkdir(parents=True, exist_ok=True)
    _seeded(911)
    torch.save(ControlNetHED_Apache2().state_dict(), folder / "ControlNetHED.pth")


def build_annotator_pidinet(folder: Path) -> None:
    """controlnet_aux's PiDiNet at full size, random weights, in the checkpoint's {"state_dict": {"module.*"}}
    layout as table5_pidinet.pth."""
    from controlnet_aux.pidi.model import pidinet

    folder.mkdir(parents=True, exist_ok=True)
    _seeded(912)
    state = {f"module.{k}": v for k, v in pidinet().state_dict().items()}
    torch.save({"state_dict": state}, folder / "table5_pidinet.pth")


def build_sam(folder: Path) -> None:
    """Segment Anything at a tiny config (128 px input, 2-block ViT), saved as a plain state dict under the
    public ViT-B checkpoint's file name, with its config beside it (``methods.core.sam`` reads both)."""
    from methods.core import sam

    config = sam.SamConfig(
        image_size=TINY_SIZE,
        patch_size=16,
        encoder_embed_dim=32,
        encoder_depth=2,
        encoder_num_heads=2,
        encoder_global_attn_indexes=(1,),
        window_size=4,
        prompt_embed_dim=32,
        mask_in_chans=4,
        decoder_depth=2,
        decoder_mlp_dim=64,
        decoder_num_heads=2,
        iou_head_hidden_dim=32,
    )
    _seeded(600)
    sam.save_sam(sam.build_sam(config), config, folder, sam.VIT_B_FILE)


def build_ade20k_segmenter(folder: Path) -> None:
    """UperNet + ConvNeXt (random, tiny) with the 150 ADE20K labels and a SegformerImageProcessor, in the root
    layout of openmmlab/upernet-convnext-small (config.json, model.safetensors, preprocessor_config.json)."""
    from transformers import ConvNextConfig, SegformerImageProcessor, UperNetConfig, UperNetForSemanticSegmentation

    from methods.core.segmap import ADE20K_CLASSES

    id2label = dict(enumerate(ADE20K_CLASSES))
    backbone = ConvNextConfig(
        depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], out_features=["stage1", "stage2", "stage3", "stage4"]
    )
    config = UperNetConfig(
        backbone_config=backbone,
        hidden_size=16,
        auxiliary_in_channels=32,
        auxiliary_channels=16,
        num_labels=len(ADE20K_CLASSES),
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
    )
    _seeded(801)
    UperNetForSemanticSegmentation(config).save_pretrained(folder)
    SegformerImageProcessor(size={"height": TINY_SIZE, "width": TINY_SIZE}).save_pretrained(folder)
