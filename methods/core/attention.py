"""Attention control: one controller class per editing method, installed as diffusers attention processors.

Prompt-to-Prompt, Plug-and-Play and MasaCtrl all edit a *target* branch by borrowing the attention of a
*source* branch that is denoised in the same UNet call. The machinery here is shared by them:

* :class:`AttentionController` counts attention calls (``layer``) and denoising steps (``step``) and has
  one method to override, :meth:`AttentionController.forward`, which receives the per-head queries, keys
  and values of one attention layer and returns its output;
* :class:`ControlledProcessor` is a diffusers attention processor (``(attn, hidden_states,
  encoder_hidden_states, attention_mask, temb)``) that does the projections like diffusers'
  ``AttnProcessor2_0`` and hands q / k / v to the controller;
* :func:`controlled` installs one processor per layer with ``unet.set_attn_processor`` (and the
  controller's forward hooks, if any) and puts the original processor objects back and removes the hooks
  afterwards, also when the block raises;
* ``methods.core.branches`` denoises the source and target branches under a controller.

Batch layout seen by controllers (``BRANCHES = 2``): ``[src_uncond, tgt_uncond, src_cond, tgt_cond]``, or
``[src, tgt]`` when the guidance scale is 1. ``q.unflatten(0, (-1, BRANCHES))`` gives ``(half, branch, ...)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

BRANCHES = 2  # source, target
PLACES = ("down", "mid", "up")  # UNet parts in the order a forward pass visits them


@dataclass(frozen=True)
class Site:
    """Where an attention call happens: layer name, UNet part, kind and forward-order index."""

    name: str  # e.g. "up_blocks.1.attentions.0.transformer_blocks.0.attn1"
    place: str  # "down", "mid" or "up"
    is_cross: bool
    index: int  # transformer block index in forward order (self and cross attention of a block share it)
    count: int  # number of transformer blocks in the UNet (16 on SD 1.5)
    scale: float  # softmax scale (1 / sqrt(head_dim))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q k^T * scale) v for (batch, heads, tokens, dim) tensors, as diffusers' default processor."""
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def attention_probs(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """The attention maps softmax(q k^T * scale): (batch, heads, queries, keys), softmax in float32."""
    return (q @ k.transpose(-1, -2) * scale).float().softmax(dim=-1).to(q.dtype)


def branch_pairs(x: torch.Tensor) -> torch.Tensor:
    """A (batch, ...) tensor seen as (halves, 2, ...): ``x[:, 0]`` source, ``x[:, 1]`` target."""
    return x.unflatten(0, (-1, BRANCHES))


def source_for_both(x: torch.Tensor) -> torch.Tensor:
    """Rows [src, tgt] per half -> [src, src] per half: the target branch gets the source's rows."""
    pairs = branch_pairs(x)
    return torch.stack([pairs[:, 0], pairs[:, 0]], dim=1).flatten(0, 1)


def steps_until(fraction: float, num_steps: int) -> int:
    """A fraction of the denoising steps as a step index bound (steps ``< bound`` are affected)."""
    return max(0, min(num_steps, round(float(fraction) * num_steps)))


class AttentionController:
    """Counts calls and steps; subclasses override :meth:`forward` (guard clause first)."""

    def __init__(self, num_steps: int) -> None:
        self.num_steps = num_steps
        self.num_layers = 0  # set by controlled(): attention calls per UNet forward
        self.step = 0
        self.layer = 0

    def reset(self) -> None:
        self.step = 0
        self.layer = 0

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        out = self.forward(q, k, v, site)
        self.layer += 1
        if self.layer == self.num_layers:  # one UNet call = one denoising step
            self.layer = 0
            self.step += 1
        return out

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        """The attention output (batch, heads, queries, dim) of one layer; the default changes nothing."""
        return attend(q, k, v, site.scale)

    def feature_hooks(self, unet: Any) -> list[tuple[torch.nn.Module, Callable[..., Any]]]:
        """Forward hooks (module, hook) to hold while controlled, e.g. feature injection; none by default."""
        return []


class ControlledProcessor:
    """A diffusers attention processor that computes q / k / v and lets the controller attend."""

    def __init__(self, controller: AttentionController, site: Site) -> None:
        self.controller = controller
        self.site = site

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError("controlled attention does not support attention masks")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.unflatten(-1, (attn.heads, -1)).transpose(1, 2)  # (batch, heads, tokens, dim)

        query, key, value = heads(query), heads(key), heads(value)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = self.controller(query, key, value, self.site)
        hidden_states = hidden_states.transpose(1, 2).flatten(2).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def attention_sites(unet: Any) -> dict[str, Site]:
    """Every attention layer of ``unet`` keyed by its processor name, with its forward-order index."""
    names = list(unet.attn_processors)

    def order(name: str) -> tuple[int, ...]:
        place = next(i for i, p in enumerate(PLACES) if name.startswith(p))
        return (place, *(int(n) for n in re.findall(r"\d+", name)))

    blocks = sorted({name.rsplit(".", 2)[0] for name in names}, key=order)
    sites = {}
    for name in names:
        layer = name.removesuffix(".processor")
        module = unet.get_submodule(layer)
        place = next(p for p in PLACES if layer.startswith(p))
        sites[name] = Site(
            name=layer,
            place=place,
            is_cross=bool(module.is_cross_attention),
            index=blocks.index(name.rsplit(".", 2)[0]),
            count=len(blocks),
            scale=float(module.scale),
        )
    return sites


@contextmanager
def controlled(unet: Any, controller: AttentionController) -> Iterator[AttentionController]:
    """Route every attention layer of ``unet`` through ``controller``; restore the original processors."""
    original = dict(unet.attn_processors)
    processors = {name: ControlledProcessor(controller, site) for name, site in attention_sites(unet).items()}
    controller.num_layers = len(processors)
    controller.reset()
    handles = []
    try:
        unet.set_attn_processor(dict(processors))  # set_attn_processor pops from the dict it is given
        handles = [module.register_forward_hook(hook) for module, hook in controller.feature_hooks(unet)]
        yield controller
    finally:
        for handle in handles:
            handle.remove()
        unet.set_attn_processor(dict(original))
