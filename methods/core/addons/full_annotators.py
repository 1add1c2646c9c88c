"""Full builders for ``annotators``: controlnet_aux's networks (the same full architectures as the tiny builders)
as .pth files in lllyasviel/Annotators, Segment Anything ViT-B as ybelkada/segment-anything's checkpoint, and
UperNet ConvNeXt-S with the 150 ADE20K labels, seeded random weights (``methods.core.fullsize``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from methods.core.fullsize import Writer


def build_openpose(folder: Path, writer: Writer) -> None:
    """body_pose_model.pth, hand_pose_model.pth (first name component stripped, as the originals: controlnet_aux's
    ``transfer`` re-adds it) and facenet.pth."""
    from controlnet_aux.open_pose.body import bodypose_model
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.hand import handpose_model

    for seed, (factory, filename, strip_prefix) in enumerate(
        (
            (bodypose_model, "body_pose_model.pth", True),
            (handpose_model, "hand_pose_model.pth", True),
            (FaceNet, "facenet.pth", False),
        )
    ):
        state = writer.build(factory, 500 + seed).state_dict()
        if strip_prefix:
            state = {".".join(k.split(".")[1:]): v for k, v in state.items()}
        writer.save_torch(state, folder / filename)


def build_annotator_lineart(folder: Path, writer: Writer) -> None:
    """The lineart generators, fine (sk_model.pth) and coarse (sk_model2.pth)."""
    from controlnet_aux.lineart import Generator

    for seed, filename in enumerate(("sk_model.pth", "sk_model2.pth")):
        writer.save_torch(writer.build(lambda: Generator(3, 1, 3), 910 + seed).state_dict(), folder / filename)


def build_annotator_hed(folder: Path, writer: Writer) -> None:
    """ControlNetHED.pth (controlnet_aux's ControlNetHED_Apache2)."""
    from controlnet_aux.hed import ControlNetHED_Apache2

    writer.save_torch(writer.build(ControlNetHED_Apache2, 920).state_dict(), folder / "ControlNetHED.pth")


def build_annotator_pidinet(folder: Path, writer: Writer) -> None:
    """table5_pidinet.pth, in the checkpoint's {"state_dict": {"module.*": ...}} layout."""
    from controlnet_aux.pidi.model import pidinet

    state = {f"module.{k}": v for k, v in writer.build(pidinet, 930).state_dict().items()}
    writer.save_torch({"state_dict": state}, folder / "table5_pidinet.pth")


def build_sam(folder: Path, writer: Writer) -> None:
    """checkpoints/sam_vit_b_01ec64.pth: a plain state dict of ViT-B and no config beside it (``methods.core.sam``
    then builds ViT-B, as for the public file)."""
    from methods.core import sam

    model = writer.build(lambda: sam.build_sam(sam.VIT_B), 600)
    writer.save_torch(model.state_dict(), folder / sam.VIT_B_FILE)


def ade20k_segmenter_config() -> Any:
    """openmmlab/upernet-convnext-small's config: ConvNeXt-S (3/3/27/3, 96..768) under UperNet (512 wide, auxiliary
    head on stage 3), the 150 ADE20K labels."""
    from transformers import ConvNextConfig, UperNetConfig

    from methods.core.segmap import ADE20K_CLASSES

    id2label = dict(enumerate(ADE20K_CLASSES))
    backbone = ConvNextConfig(
        depths=[3, 3, 27, 3],
        hidden_sizes=[96, 192, 384, 768],
        drop_path_rate=0.3,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return UperNetConfig(
        backbone_config=backbone,
        hidden_size=512,
        auxiliary_in_channels=384,
        auxiliary_channels=256,
        num_labels=len(ADE20K_CLASSES),
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
    )


def build_ade20k_segmenter(folder: Path, writer: Writer) -> None:
    """The root of openmmlab/upernet-convnext-small: config.json, model.safetensors, preprocessor_config.json
    (SegformerImageProcessor at 512 x 512)."""
    from transformers import SegformerImageProcessor, UperNetForSemanticSegmentation

    config = ade20k_segmenter_config()
    writer.save_model(writer.build(lambda: UperNetForSemanticSegmentation(config), 801), folder)
    SegformerImageProcessor(size={"height": 512, "width": 512}).save_pretrained(folder)
