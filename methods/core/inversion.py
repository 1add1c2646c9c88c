"""DDIM inversion on the shared backbone, shared by every method that edits a real photo.

Deterministic DDIM (Song et al., 2021) run backwards maps a clean latent x_0 to a noise latent x_T; run
forwards from there with the same prompt and guidance 1 it regenerates x_0 up to the discretisation error.
Methods such as DragDiffusion, Prompt-to-Prompt on real images and null-text inversion start from this
trajectory. Both directions use diffusers' schedulers (``DDIMInverseScheduler`` / ``DDIMScheduler``) built
from the backbone's scheduler config, so their noise levels match step for step.

Trajectory convention: ``trajectory[i]`` is the latent after ``i`` inversion steps, so
``trajectory[0]`` is the encoded image and ``trajectory[-1]`` the most noisy one. ``ddim_sample`` started
from ``trajectory[k]`` with ``start_index=k`` walks the same levels back down to index 0.

Several methods on the same photo invert it once: :func:`invert_image` keeps a small per-backbone LRU cache
keyed by the image bytes, prompt, step count and guidance (see :func:`inversion_cache`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

StepHook = Callable[[int, torch.Tensor], torch.Tensor]  # (trajectory index reached, latents) -> latents


# -- encoding / decoding ------------------------------------------------------------------------------
@torch.no_grad()
def encode_image(backbone: Backbone, image: Image.Image) -> torch.Tensor:
    """The VAE latent of ``image`` (distribution mean x scaling factor, float32, shape 1x4xh/8xw/8)."""
    pixels = backbone.base.image_processor.preprocess(image.convert("RGB"))
    pixels = pixels.to(backbone.device, backbone.vae.dtype)
    latents = backbone.vae.encode(pixels).latent_dist.mean
    return latents.float() * backbone.vae.config.scaling_factor


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
    if guidance == 1.0:
        return unet(latents.to(unet.dtype), t, encoder_hidden_states=prompt_embeds).sample.float()
    if negative_embeds is None:
        raise ValueError("guidance != 1 needs negative_embeds (see encode_prompt)")
    batch = torch.cat([latents] * 2).to(unet.dtype)  # [uncond, cond]
    uncond, cond = unet(batch, t, encoder_hidden_states=torch.cat([negative_embeds, prompt_embeds])).sample.chunk(2)
    return (uncond + guidance * (cond - uncond)).float()


# -- inversion and sampling ---------------------------------------------------------------------------
@torch.no_grad()
def ddim_invert(
    backbone: Backbone,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    num_steps: int,
    guidance: float = 1.0,
    stop_at: int | None = None,
    *,
    negative_embeds: torch.Tensor | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> list[torch.Tensor]:
    """DDIM-invert ``latents``: the trajectory [x_0, x_1, ..., x_k] with k = ``stop_at`` or ``num_steps``."""
    from diffusers import DDIMInverseScheduler

    scheduler = DDIMInverseScheduler.from_config(backbone.scheduler.config)
    scheduler.set_timesteps(num_steps, device=backbone.device)
    stop = num_steps if stop_at is None else max(0, min(int(stop_at), num_steps))
    trajectory = [latents.float()]
    for i, t in enumerate(scheduler.timesteps[:stop]):
        noise = predict_noise(backbone, trajectory[-1], t, prompt_embeds, guidance, negative_embeds)
        trajectory.append(scheduler.step(noise, t, trajectory[-1]).prev_sample)
        if on_step is not None:
            on_step(i + 1, stop)
    return trajectory


@torch.no_grad()
def ddim_sample(
    backbone: Backbone,
    x_t: torch.Tensor,
    prompt_embeds: torch.Tensor,
    num_steps: int,
    start_index: int,
    guidance: float = 1.0,
    *,
    negative_embeds: torch.Tensor | None = None,
    step_hook: StepHook | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Deterministic DDIM from ``x_t`` = trajectory[start_index] down to index 0; returns the clean latent.

    ``step_hook(i, latents)`` runs after each step with the trajectory index ``i`` just reached and returns
    the latents to continue with (latent blending, attention-map bookkeeping...).
    """
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(backbone.scheduler.config)
    scheduler.set_timesteps(num_steps, device=backbone.device)
    latents = x_t.float()
    timesteps = scheduler.timesteps[num_steps - start_index :]
    for j, t in enumerate(timesteps):
        noise = predict_noise(backbone, latents, t, prompt_embeds, guidance, negative_embeds)
        latents = scheduler.step(noise, t, latents).prev_sample
        if step_hook is not None:
            latents = step_hook(start_index - j - 1, latents)
        if on_step is not None:
            on_step(j + 1, len(timesteps))
    return latents


# -- the shared cache ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inversion:
    """A cached inversion: the trajectory and the prompt embeddings it was computed with."""

    trajectory: tuple[torch.Tensor, ...]
    prompt_embeds: torch.Tensor
    negative_embeds: torch.Tensor


class InversionCache:
    """A least-recently-used store of a few inversions with hit/miss counters."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[Any, ...], Inversion] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...], length: int) -> Inversion | None:
        """The entry for ``key`` if its trajectory has at least ``length`` latents (counts a hit or miss)."""
        entry = self._entries.get(key)
        if entry is None or len(entry.trajectory) < length:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: tuple[Any, ...], entry: Inversion) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0


def inversion_cache(backbone: Backbone) -> InversionCache:
    """The backbone's inversion cache (owned by the backbone, dropped with it)."""
    return backbone.cache("inversion", InversionCache)


def image_digest(image: Image.Image) -> str:
    return hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


def invert_image(
    backbone: Backbone,
    image: Image.Image,
    prompt: str,
    num_steps: int,
    guidance: float = 1.0,
    stop_at: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Inversion:
    """Encode, embed and DDIM-invert ``image`` once; later calls with the same inputs reuse the result.

    The returned trajectory has ``stop_at + 1`` latents (``num_steps + 1`` without ``stop_at``); it is shared
    with other callers, so never modify its tensors in place.
    """
    stop = num_steps if stop_at is None else max(0, min(int(stop_at), num_steps))
    # The UNet's attention processors are part of the key: an inversion made while a method has patched
    # them (an adapter, a controller) must not be served to a method running the plain UNet.
    processors = tuple(sorted((name, id(p)) for name, p in backbone.unet.attn_processors.items()))
    key = (image_digest(image), prompt, int(num_steps), float(guidance), hash(processors))
    cache = inversion_cache(backbone)
    entry = cache.get(key, stop + 1)
    if entry is None:
        cond, uncond = encode_prompt(backbone, prompt)
        latents = encode_image(backbone, image)
        trajectory = ddim_invert(
            backbone, latents, cond, num_steps, guidance, stop, negative_embeds=uncond, on_step=on_step
        )
        entry = Inversion(tuple(trajectory), cond, uncond)
        cache.put(key, entry)
    elif on_step is not None:
        on_step(stop, stop)
    return Inversion(entry.trajectory[: stop + 1], entry.prompt_embeds, entry.negative_embeds)
