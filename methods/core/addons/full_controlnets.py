"""Full builders for ``controlnets``: ControlNet v1.1 made from SD 1.5's UNet config (``ControlNetModel.from_unet``,
conditioning embedding 16/32/96/256), seeded random weights (``methods.core.fullsize``), in the root layout of
lllyasviel/control_v11p_sd15_*."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from methods.core.fullsize import Writer, sd15_unet


def controlnet(writer: Writer, seed: int) -> Any:
    from diffusers import ControlNetModel

    model = writer.build(lambda: ControlNetModel.from_unet(sd15_unet(), load_weights_from_unet=False), seed)
    # Real ControlNets start from zero convolutions and learn them; random ones must not be zero, or the
    # control would have no effect at all.
    zero_convs = [*model.controlnet_down_blocks, model.controlnet_mid_block, model.controlnet_cond_embedding.conv_out]
    writer.normal_((conv.weight for conv in zero_convs), 0.05, seed + 50)
    return model


def build_controlnet_openpose(folder: Path, writer: Writer) -> None:
    writer.save_model(controlnet(writer, 101), folder)


def build_controlnet_scribble(folder: Path, writer: Writer) -> None:
    writer.save_model(controlnet(writer, 102), folder)


def build_controlnet_seg(folder: Path, writer: Writer) -> None:
    writer.save_model(controlnet(writer, 103), folder)


def build_controlnet_lineart(folder: Path, writer: Writer) -> None:
    writer.save_model(controlnet(writer, 110), folder)
