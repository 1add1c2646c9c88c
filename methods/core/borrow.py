"""Shared state is borrowed, never kept.

Methods run on modules shared by every other method (the UNet, VAE, text encoder, add-ons). Whatever a
method changes on them (attention processors, a LoRA, an IP-Adapter's image projection, new tokens and their
embedding rows, training flags, the scheduler's config) is put back by :func:`borrowed`, the one owner of
restoring, which the runner wraps around every method, also when the method raises. Methods therefore change
shared state freely and never restore it by hand; they only remove what is theirs alone (a forward hook they
registered through its handle).

What is saved and restored is declared below, one :class:`SharedState` entry per kind of state.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

_MISSING = object()  # "the attribute was not set on the instance"


@dataclass(frozen=True)
class SharedState:
    """One kind of shared state: ``capture(target)`` saves it (None where ``target`` has none),
    ``restore(target, saved)`` puts it back (a no-op when unchanged), ``summary(target)`` is a comparable
    fingerprint of it (for tests and checks)."""

    name: str
    capture: Callable[[Any], Any]
    restore: Callable[[Any, Any], None]
    summary: Callable[[Any], Any]


# -- LoRA / peft adapters (diffusers' ``add_adapter``) --------------------------------------------------------
def _capture_adapters(module: Any) -> Any:
    from diffusers.loaders.peft import PeftAdapterMixin

    if not isinstance(module, PeftAdapterMixin):
        return None
    names = tuple(getattr(module, "peft_config", None) or {})
    return names, (module.active_adapters() if names else []), vars(module).get("_hf_peft_config_loaded", _MISSING)


def _restore_adapters(module: Any, saved: Any) -> None:
    names, active, flag = saved
    added = [name for name in (getattr(module, "peft_config", None) or {}) if name not in names]
    if added:
        module.delete_adapters(added)
    if names and added:
        module.set_adapter(list(active))
    elif not names and (added or vars(module).get("_hf_peft_config_loaded", _MISSING) is not flag):
        module.unload_lora()  # puts the original layers (the same parameter objects) back into the module tree
    if vars(module).get("_hf_peft_config_loaded", _MISSING) is not flag:  # unload_lora leaves None on the instance
        if flag is _MISSING:
            vars(module).pop("_hf_peft_config_loaded", None)
        else:
            module._hf_peft_config_loaded = flag


def _adapter_summary(module: Any) -> Any:
    return tuple(getattr(module, "peft_config", None) or {}), "_hf_peft_config_loaded" in vars(module)


# -- attention processors ---------------------------------------------------------------------------------------
def _capture_processors(module: Any) -> Any:
    return dict(module.attn_processors) if hasattr(module, "attn_processors") else None


def _restore_processors(module: Any, saved: dict[str, Any]) -> None:
    if dict(module.attn_processors) != saved:
        module.set_attn_processor(dict(saved))  # diffusers pops from the dict it is given


def _processor_summary(module: Any) -> Any:
    return {k: id(v) for k, v in module.attn_processors.items()} if hasattr(module, "attn_processors") else None


# -- the UNet's image projection (an IP-Adapter replaces encoder_hid_proj and its config entry) ---------------
def _capture_projection(module: Any) -> Any:
    if not hasattr(module, "encoder_hid_proj"):
        return None
    return module.encoder_hid_proj, module.config.encoder_hid_dim_type


def _restore_projection(module: Any, saved: Any) -> None:
    projection, kind = saved
    if module.encoder_hid_proj is not projection:
        module.encoder_hid_proj = projection
    if module.config.encoder_hid_dim_type != kind:
        module.register_to_config(encoder_hid_dim_type=kind)


def _projection_summary(module: Any) -> Any:
    return (id(module.encoder_hid_proj), module.config.encoder_hid_dim_type) if _capture_projection(module) else None


# -- input embeddings (new tokens grow them: ``resize_token_embeddings``) ---------------------------------------
def _embeddings(module: Any) -> torch.nn.Embedding | None:
    if not hasattr(module, "get_input_embeddings"):
        return None
    try:
        embeddings = module.get_input_embeddings()
    except NotImplementedError:  # e.g. ClapModel: two towers, no single input embedding
        return None
    return embeddings if isinstance(embeddings, torch.nn.Embedding) else None  # vision models: a patch Conv2d


def _capture_embeddings(module: Any) -> Any:
    embeddings = _embeddings(module)
    if embeddings is None:
        return None
    config = module.config.get_text_config() if hasattr(module.config, "get_text_config") else module.config
    # transformers 5 grows the embedding in place (same module and parameter, a new tensor in .data) and
    # records the new size in the config and on the model: keep all of them.
    return (
        embeddings,
        embeddings.weight,
        embeddings.weight.data,
        (embeddings.num_embeddings, embeddings.padding_idx),
        (config, getattr(config, "vocab_size", None), vars(module).get("vocab_size", _MISSING)),
    )


def _restore_embeddings(module: Any, saved: Any) -> None:
    embeddings, weight, data, (rows, padding), (config, vocab_size, attribute) = saved
    if module.get_input_embeddings() is not embeddings:
        module.set_input_embeddings(embeddings)
    if embeddings.weight is not weight:
        embeddings.weight = weight
    if weight.data_ptr() != data.data_ptr() or weight.shape != data.shape:
        weight.data = data
    embeddings.num_embeddings, embeddings.padding_idx = rows, padding
    if vocab_size is not None:
        config.vocab_size = vocab_size
    if attribute is _MISSING:
        vars(module).pop("vocab_size", None)
    else:
        module.vocab_size = attribute


def _embedding_summary(module: Any) -> Any:
    embeddings = _embeddings(module)
    return None if embeddings is None else (id(embeddings), tuple(embeddings.weight.shape))


# -- training flags (train / eval, requires_grad) ---------------------------------------------------------------
def _capture_training(module: Any) -> Any:
    return module.training, [(p, p.requires_grad) for p in module.parameters()]


def _restore_training(module: Any, saved: Any) -> None:
    training, flags = saved
    module.train(training)
    for parameter, flag in flags:
        if parameter.requires_grad != flag:
            parameter.requires_grad_(flag)


def _training_summary(module: Any) -> Any:
    return module.training, sum(p.requires_grad for p in module.parameters())


# -- the scheduler's config -------------------------------------------------------------------------------------
def _capture_scheduler(scheduler: Any) -> Any:
    return dict(scheduler.config)


def _restore_scheduler(scheduler: Any, saved: dict[str, Any]) -> None:
    if dict(scheduler.config) != saved:
        scheduler.register_to_config(**saved)


# -- the tokenizer's added tokens -------------------------------------------------------------------------------
def _added_tokens(tokenizer: Any) -> dict[int, str]:
    return {index: token.content for index, token in tokenizer.added_tokens_decoder.items()}


_DEFINITIONS: weakref.WeakKeyDictionary[Any, tuple[int, dict[int, str], str]] = weakref.WeakKeyDictionary()


def _capture_tokens(tokenizer: Any) -> Any:
    # transformers 5 tokenizers are backed by a `tokenizers.Tokenizer`: its JSON definition is the whole state.
    # Serialising it (megabytes for CLIP's vocabulary) once per vocabulary, not once per run, is enough.
    length, added = len(tokenizer), _added_tokens(tokenizer)
    known = _DEFINITIONS.get(tokenizer)
    if known is None or known[:2] != (length, added):
        known = _DEFINITIONS[tokenizer] = (length, added, tokenizer.backend_tokenizer.to_str())
    return known


def _restore_tokens(tokenizer: Any, saved: Any) -> None:
    length, added, definition = saved
    if len(tokenizer) != length or _added_tokens(tokenizer) != added:
        from tokenizers import Tokenizer

        tokenizer._tokenizer = Tokenizer.from_str(definition)  # no public setter for the backend
        # CLIPTokenizer wraps its backend's decode at init (so "</w>" decodes as a space); a new backend needs it again.
        rewrap = getattr(tokenizer, "_wrap_decode_method_backend_tokenizer", None)
        if rewrap is not None:
            rewrap()


def _tokens_summary(tokenizer: Any) -> Any:
    return len(tokenizer), _added_tokens(tokenizer)


MODULE_STATE: tuple[SharedState, ...] = (  # restored in this order: the LoRA first (it changes the module tree)
    SharedState("adapters", _capture_adapters, _restore_adapters, _adapter_summary),
    SharedState("processors", _capture_processors, _restore_processors, _processor_summary),
    SharedState("encoder_hid_proj", _capture_projection, _restore_projection, _projection_summary),
    SharedState("embeddings", _capture_embeddings, _restore_embeddings, _embedding_summary),
    SharedState("training", _capture_training, _restore_training, _training_summary),
)
SCHEDULER_STATE = (SharedState("config", _capture_scheduler, _restore_scheduler, lambda s: (id(s), dict(s.config))),)
TOKENIZER_STATE = (SharedState("added_tokens", _capture_tokens, _restore_tokens, _tokens_summary),)


def _targets(modules: dict[str, Any], scheduler: Any, tokenizer: Any) -> list[tuple[str, Any, tuple[SharedState, ...]]]:
    targets = [(name, m, MODULE_STATE) for name, m in modules.items() if isinstance(m, torch.nn.Module)]
    targets.append(("scheduler", scheduler, SCHEDULER_STATE))
    if tokenizer is not None:
        targets.append(("tokenizer", tokenizer, TOKENIZER_STATE))
    return targets


def vocabulary(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's definition without the per-call truncation / padding settings (for comparisons)."""
    import json

    state = json.loads(tokenizer.backend_tokenizer.to_str())
    return {key: value for key, value in state.items() if key not in {"truncation", "padding"}}


def shared_state(modules: dict[str, Any], scheduler: Any, tokenizer: Any) -> dict[str, Any]:
    """A comparable fingerprint of the shared state (used by tests and checks), with the forward hooks on the
    modules: not restored here (whoever registers a hook removes it by its handle), but checked."""
    fingerprint: dict[str, Any] = {}
    for name, target, entries in _targets(modules, scheduler, tokenizer):
        for entry in entries:
            fingerprint[f"{name}.{entry.name}"] = entry.summary(target)
        if isinstance(target, torch.nn.Module):
            fingerprint[f"{name}.hooks"] = sum(
                len(m._forward_hooks) + len(m._forward_pre_hooks) for m in target.modules()
            )
    return fingerprint


class Borrow:
    """The saved shared state of one ``borrowed()`` block; modules loaded during the block join it."""

    def __init__(self, modules: dict[str, Any], scheduler: Any, tokenizer: Any) -> None:
        self.saved: list[tuple[Any, SharedState, Any]] = []
        self._capture(_targets(modules, scheduler, tokenizer))

    def _capture(self, targets: list[tuple[str, Any, tuple[SharedState, ...]]]) -> None:
        self.saved.extend((target, entry, entry.capture(target)) for _, target, entries in targets for entry in entries)

    def adopt(self, modules: dict[str, Any]) -> None:
        """Save the state of modules first loaded inside the block (a lazily loaded add-on), as loaded."""
        self._capture([(name, m, MODULE_STATE) for name, m in modules.items() if isinstance(m, torch.nn.Module)])

    def restore(self) -> None:
        for target, entry, value in self.saved:
            if value is not None:
                entry.restore(target, value)


@contextmanager
def borrowed(modules: dict[str, Any], scheduler: Any, tokenizer: Any) -> Iterator[Borrow]:
    """Run a block with the shared modules, then put every declared piece of shared state back."""
    borrow = Borrow(modules, scheduler, tokenizer)
    try:
        yield borrow
    finally:
        borrow.restore()
