"""The sound as an image prompt: ImageBind's audio embedding fed to IP-Adapter in place of an image embedding.

ImageBind ("ImageBind: One Embedding Space To Bind Them All", Girdhar et al., CVPR 2023,
https://arxiv.org/abs/2305.05665) trains its audio encoder against the frozen OpenCLIP ViT-H/14 image encoder,
so a clip's embedding lands where the image embeddings of matching pictures are. IP-Adapter SD 1.5 (Ye et al.,
2023, https://arxiv.org/abs/2308.06721) is conditioned on exactly those image embeddings (its image encoder is
OpenCLIP ViT-H/14): its decoupled cross-attention turns one embedding into four extra context tokens. Handing
IP-Adapter the *audio* embedding makes the sound the prompt, with no training and no words in between; the
paper shows this composition with a DALL-E 2-style decoder (its "embedding-space arithmetic" and audio-to-image
generation), here it is IP-Adapter on SD 1.5, as in community "ImageBind + IP-Adapter" demos.

What is changed: ImageBind's embedding is unit-length while IP-Adapter was trained on unnormalised image
embeddings, so the audio direction is scaled to the norm of the photo's own image embedding; the negative
(unconditional) embedding is zeros, as diffusers uses. The photo is edited SDEdit-style (diffusers
``StableDiffusionImg2ImgPipeline`` + ``load_ip_adapter``, ``ip_adapter_image_embeds``). Licences: ImageBind's
weights are CC BY-NC-SA 4.0 (non-commercial); IP-Adapter's are Apache 2.0.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import StableDiffusionImg2ImgPipeline

from methods.core.costs import denoised
from methods.core.denoise import denoise
from methods.core.imagebind import cosine, sound_embedding
from methods.core.registry import register
from methods.core.slots import AUDIO, IMAGE, NEGATIVE_PROMPT, PROMPT
from methods.core.spec import (
    Condition,
    EditInputs,
    FloatParam,
    Method,
    MethodOutput,
    Paper,
    RunContext,
    Strategy,
)
from methods.ip_adapter import ip_adapter_loaded


@register
class ImageBindIPAdapter(Method):
    name = "imagebind_ip_adapter"
    label = "Sound as image prompt (ImageBind → IP-Adapter)"
    condition = Condition.AUDIO
    strategy = Strategy.TRAINING_FREE
    paper = Paper("ImageBind: One Embedding Space To Bind Them All", 2023, "https://arxiv.org/abs/2305.05665")
    summary = (
        "ImageBind embeds the clip where OpenCLIP ViT-H puts images; IP-Adapter takes that embedding as its image "
        "prompt and edits the photo (no words in between). ImageBind weights: CC BY-NC-SA 4.0, non-commercial."
    )
    params = (
        FloatParam(
            "ip_adapter_scale",
            0.8,
            0.0,
            1.5,
            label="IP-Adapter scale",
            help="Weight of the sound's image-prompt tokens in every cross-attention (0 = the text prompt alone).",
        ),
        FloatParam("strength", 0.7, 0.05, 1.0, help="How far the photo is noised before denoising (img2img)."),
    )
    addons = ("imagebind_audio", "ip_adapter", "ip_adapter_image_encoder")
    requires = (IMAGE, AUDIO)
    optional = (PROMPT, NEGATIVE_PROMPT)

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        return 2.0 * denoised(steps, params["strength"])  # IP-Adapter img2img: int(steps x strength) CFG steps

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        pipe = ctx.backbone.pipeline(
            StableDiffusionImg2ImgPipeline, image_encoder=ctx.backbone.addon("ip_adapter_image_encoder")
        )
        sound = sound_embedding(ctx.backbone, inputs.audio)  # 1. the clip's unit embedding
        with ip_adapter_loaded(pipe, ctx.backbone.addon("ip_adapter"), params["ip_adapter_scale"]):
            photo = image_embeds(pipe, inputs.image)  # 2. the photo's, in the same space (IP-Adapter's processor)
            check_widths(sound, photo)
            # 3. the sound, at the length of an image embedding, as IP-Adapter's image prompt
            embeds = prompt_embeds(sound, photo, cfg=inputs.guidance > 1)
            image = denoise(
                pipe, ctx, inputs, strength=params["strength"], image=inputs.image, ip_adapter_image_embeds=[embeds]
            )
            after = image_embeds(pipe, image)
        info = {
            "sound vs photo": f"{float(cosine(sound, photo)):.3f}",
            "sound vs result": f"{float(cosine(sound, after)):.3f}",
        }
        return MethodOutput(image, info={"ImageBind cosine": ", ".join(f"{k} {v}" for k, v in info.items())})


@torch.no_grad()
def image_embeds(pipe: Any, image: Any) -> torch.Tensor:
    """The (1, D) image embedding IP-Adapter would compute for ``image`` (the pipeline's own ``encode_image``)."""
    embeds, _ = pipe.encode_image(image, pipe.image_encoder.device, 1)
    return embeds.float()


def check_widths(sound: torch.Tensor, photo: torch.Tensor) -> None:
    if sound.numel() != photo.shape[-1]:
        raise ValueError(
            f"ImageBind's audio embedding has {sound.numel()} values but IP-Adapter's image encoder makes "
            f"{photo.shape[-1]}: the two checkpoints are not from the same OpenCLIP ViT-H space."
        )


def prompt_embeds(sound: torch.Tensor, photo: torch.Tensor, cfg: bool) -> torch.Tensor:
    """``ip_adapter_image_embeds``' entry: (2, 1, D) = [zeros, sound x |photo|] with guidance, else (1, 1, D)."""
    positive = (sound.reshape(1, 1, -1) * photo.norm()).to(photo.dtype)
    return torch.cat([torch.zeros_like(positive), positive]) if cfg else positive
