"""The shared steps between pixels, words and the UNet: VAE encode and decode, prompt embeddings, one
(optionally guided) noise prediction. Every method that works on latents itself uses these, so the scaling
factor, dtypes and the distribution's mean (= its mode) are handled in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from PIL import Image

if TYPE_CHECKING:
    from methods.core.backbone import Backbone


@torch.no_grad()
def encode_image(backbone: Backbone, image: Image.Image, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The VAE latent of ``image`` (distribution mean = mode, x scaling factor, 1x4xh/8xw/8) in ``dtype``."""
    pixels = backbone.base.image_processor.preprocess(image.convert("RGB"))
    pixels = pixels.to(backbone.device, backbone.vae.dtype)
    latents = backbone.vae.encode(pixels).latent_dist.mean
    return (latents.float() * backbone.vae.config.scaling_factor).to(dtype)


@torch.no_grad()
def decode_latents(backbone: Backbone, latents: torch.Tensor) -> Image.Image:
    """The VAE decoding of a (1, 4, h, w) latent as a PIL image."""
    vae = backbone.vae
    pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    return backbone.base.image_processor.postprocess(pixels.float(), output_type="pil")[0]


@torch.no_grad()
def encode_prompt(backbone: Backbone, prompt: str, negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt embeddings, negative-prompt embeddings) through the pipeline's own ``encode_prompt``."""
    from diffusers import StableDiffusionPipeline

    pipe = backbone.pipeline(StableDiffusionPipeline)
    cond, uncond = pipe.encode_prompt(prompt, backbone.device, 1, True, negative_prompt=negative_prompt)
    return cond, uncond


# -- one noise prediction -----------------------------------------------------------------------------
def predict_noise(
    backbone: Backbone,
    latents: torch.Tensor,
    t: torch.Tensor | int,
    prompt_embeds: torch.Tensor,
    guidance: float = 1.0,
    negative_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """The UNet's epsilon in float32, with classifier-free guidance when ``guidance != 1``."""
    unet = backbone.unet
    prompt_embeds = prompt_embeds.to(unet.dtype)  # a float32 null-text embedding meets a float16 UNet
    if guidance == 1.0:
        return unet(latents.to(unet.dtype), t, encoder_hidden_states=prompt_embeds).sample.float()
    if negative_embeds is None:
        raise ValueError("guidance != 1 needs negative_embeds (see encode_prompt)")
    batch = torch.cat([latents] * 2).to(unet.dtype)  # [uncond, cond]
    embeds = torch.cat([negative_embeds.to(unet.dtype), prompt_embeds])
    uncond, cond = unet(batch, t, encoder_hidden_states=embeds).sample.chunk(2)
    return (uncond + guidance * (cond - uncond)).float()
