"""Tiny builders for ``controlnets``: ControlNets made from the tiny base UNet (``ControlNetModel.from_unet``, as
the real ones were initialised from SD's), in the root layout of the real v1.1 checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

from methods.core.tiny import _seeded, tiny_unet


def _controlnet(offset: int):
    from diffusers import ControlNetModel

    unet = tiny_unet()
    _seeded(100 + offset)
    model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16, 32))
    # Real ControlNets start from zero convolutions and learn them; random ones must not be zero, or the
    # tiny control would have no effect at all and tests could not see it.
    with torch.no_grad():
        zero_convs = [
            *model.controlnet_down_blocks,
            model.controlnet_mid_block,
            model.controlnet_cond_embedding.conv_out,
        ]
        for conv in zero_convs:
            conv.weight.normal_(0.0, 0.05)
    return model


def build_controlnet_openpose(folder: Path) -> None:
    _controlnet(1).save_pretrained(folder)


def build_controlnet_scribble(folder: Path) -> None:
    _controlnet(2).save_pretrained(folder)


def build_controlnet_seg(folder: Path) -> None:
    _controlnet(3).save_pretrained(folder)


def build_controlnet_lineart(folder: Path) -> None:
    """ControlNet v1.1 Lineart, root layout of lllyasviel/control_v11p_sd15_lineart.

    Unlike the older tiny ControlNets, the convolutions of the conditioning embedding are He-initialised: with
    PyTorch's default init the signal shrinks layer by layer and the random network answers a map's constant
    part only (measured: residuals moved by ~1e-5 between two different skeletons), so no test could see the
    map's content. The output convolution is then scaled x8, so a sparse line map (3% white pixels, like the
    example sketch) adds an embedding about as large as the latent's own features."""
    model = _controlnet(10)
    embedding = model.controlnet_cond_embedding
    with torch.no_grad():
        for conv in [embedding.conv_in, *embedding.blocks, embedding.conv_out]:
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        embedding.conv_out.weight.mul_(8.0)
    model.save_pretrained(folder)
