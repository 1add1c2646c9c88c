"""Shared state is borrowed, never kept.

Methods run on modules shared by every other method (the UNet, VAE, text encoder, add-ons). A method
that sets attention processors, loads an IP-Adapter into the UNet, adds tokens or swaps a scheduler
does so inside :func:`borrowed`, which puts everything back afterwards, also when the method raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)


@dataclass
class _ModuleState:
    module: torch.nn.Module
    processors: dict[str, Any] | None
    training: bool
    requires_grad: list[bool]
    extras: dict[str, Any] = field(default_factory=dict)


def _capture(module: torch.nn.Module) -> _ModuleState:
    processors = dict(module.attn_processors) if hasattr(module, "attn_processors") else None
    extras: dict[str, Any] = {}
    if hasattr(module, "encoder_hid_proj"):  # IP-Adapter replaces the UNet's encoder_hid_proj and config
        extras["encoder_hid_proj"] = module.encoder_hid_proj
        extras["encoder_hid_dim_type"] = module.config.encoder_hid_dim_type
    if hasattr(module, "get_input_embeddings"):  # textual inversion grows the text encoder's embeddings
        try:
            embeddings = module.get_input_embeddings()
            if isinstance(embeddings, torch.nn.Embedding):  # vision models answer with a patch Conv2d
                extras["input_embeddings"] = embeddings
                # transformers 5 grows the embedding in place (same module, new weight tensor): keep both.
                extras["input_embeddings_weight"] = (
                    embeddings.weight,
                    embeddings.weight.data,
                    embeddings.num_embeddings,
                )
        except NotImplementedError:  # e.g. ClapModel: two towers, no single input embedding
            pass
    return _ModuleState(
        module=module,
        processors=processors,
        training=module.training,
        requires_grad=[p.requires_grad for p in module.parameters()],
        extras=extras,
    )


def _restore(state: _ModuleState) -> None:
    module = state.module
    if state.processors is not None and dict(module.attn_processors) != state.processors:
        module.set_attn_processor(state.processors)
    if "encoder_hid_proj" in state.extras:
        module.encoder_hid_proj = state.extras["encoder_hid_proj"]
        module.register_to_config(encoder_hid_dim_type=state.extras["encoder_hid_dim_type"])
    if "input_embeddings" in state.extras:
        embeddings = state.extras["input_embeddings"]
        if module.get_input_embeddings() is not embeddings:
            module.set_input_embeddings(embeddings)
        weight, data, rows = state.extras["input_embeddings_weight"]
        if embeddings.weight is not weight:
            embeddings.weight = weight
        if weight.data_ptr() != data.data_ptr() or weight.shape != data.shape:
            weight.data = data
        embeddings.num_embeddings = rows
    module.train(state.training)
    for parameter, flag in zip(module.parameters(), state.requires_grad, strict=False):
        parameter.requires_grad_(flag)


def shared_state(modules: dict[str, Any], scheduler: Any, tokenizer: Any) -> dict[str, Any]:
    """A comparable fingerprint of the shared state (used by tests and by the runner's check)."""
    fingerprint: dict[str, Any] = {"scheduler": (id(scheduler), dict(scheduler.config))}
    fingerprint["tokenizer_len"] = len(tokenizer) if tokenizer is not None else None
    for name, module in modules.items():
        if hasattr(module, "attn_processors"):
            fingerprint[f"{name}.processors"] = {k: id(v) for k, v in module.attn_processors.items()}
        if hasattr(module, "encoder_hid_proj"):
            fingerprint[f"{name}.encoder_hid_proj"] = id(module.encoder_hid_proj)
        if hasattr(module, "get_input_embeddings"):
            try:
                embeddings = module.get_input_embeddings()
            except NotImplementedError:
                embeddings = None
            if isinstance(embeddings, torch.nn.Embedding):
                fingerprint[f"{name}.embeddings"] = tuple(embeddings.weight.shape)
        if isinstance(module, torch.nn.Module):
            fingerprint[f"{name}.hooks"] = sum(
                len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules()
            )
        if hasattr(module, "training"):
            fingerprint[f"{name}.training"] = module.training
            fingerprint[f"{name}.trainable"] = sum(p.requires_grad for p in module.parameters())
    return fingerprint


@contextmanager
def borrowed(modules: dict[str, Any], scheduler: Any, tokenizer: Any) -> Iterator[None]:
    """Run a block with the shared modules, then restore processors, scheduler, tokenizer and flags."""
    states = [_capture(m) for m in modules.values() if isinstance(m, torch.nn.Module)]
    scheduler_config = dict(scheduler.config)
    added_tokens = len(tokenizer) if tokenizer is not None else 0
    try:
        yield
    finally:
        for state in states:
            _restore(state)
        if dict(scheduler.config) != scheduler_config:
            logger.warning("a method changed the shared scheduler's config; restoring it")
            scheduler.register_to_config(**scheduler_config)
        if tokenizer is not None and len(tokenizer) != added_tokens:
            logger.warning("a method added tokens to the shared tokenizer (%d -> %d)", added_tokens, len(tokenizer))
