"""T2I-Adapter Segmentation (Mou et al., "T2I-Adapter: Learning Adapters to Dig out More Controllable Ability for
Text-to-Image Diffusion Models", AAAI 2024).

https://arxiv.org/abs/2302.08453 — see methods/core/t2i_adapter.py for the shared call. A small convolutional
network, trained on colour-coded segmentation maps while SD 1.4 stays frozen, pixel-unshuffles the map to 1/8 of
the image size and, through residual blocks that halve the resolution, produces one feature map per UNet encoder
level with that level's channels. The features are computed once per image, scaled by the adapter weight, and added
to the UNet encoder's hidden states at the end of each down block at every denoising step (ControlNet instead
runs a copy of the encoder at every step). diffusers' ``StableDiffusionAdapterPipeline`` generates from the
map; it has no image-to-image mode, so a source photo only sets the output size. Caveat: the released adapter
was trained on COCO-Stuff maps in their own colour coding, not on ADE20K's palette (which ControlNet-Seg reads),
so with the tab's ADE20K maps it follows the region layout, while a colour need not mean the same class to it.
"""

from __future__ import annotations

from typing import Any

from methods.core.registry import register
from methods.core.slots import CONDITION_MAP, PROMPT
from methods.core.spec import Condition, EditInputs, Method, MethodOutput, RunContext, Strategy
from methods.core.t2i_adapter import ADAPTER_PARAMS, T2I_ADAPTER_PAPER, run_adapter


@register
class T2IAdapterSeg(Method):
    name = "t2i_adapter_seg"
    label = "T2I-Adapter Segmentation"
    condition = Condition.SEGMENTATION
    strategy = Strategy.TRAINING_BASED
    paper = T2I_ADAPTER_PAPER
    summary = (
        "A light adapter turns the ADE20K map into features added to the UNet encoder, once per image (generates)."
    )
    params = ADAPTER_PARAMS
    addons = ("t2i_adapter_seg",)
    requires = (CONDITION_MAP, PROMPT)

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        return run_adapter(ctx, inputs, params, "t2i_adapter_seg")
