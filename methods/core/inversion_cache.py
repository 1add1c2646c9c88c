"""The backbone's store of inversions: a least-recently-used cache keyed by kind, photo digest, prompt, steps,
guidance, options and the UNet's attention processors, with hit/miss counters per kind."""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

if TYPE_CHECKING:
    from methods.core.backbone import Backbone
    from methods.core.inversion import Inversion


class InversionCache:
    """A least-recently-used store of a few inversions with hit/miss counters (in all and per kind).

    A key's first element names its kind (``"ddim"``, ``"null-text"``...); the counters per kind use it.
    """

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self.hits_by_kind: Counter[str] = Counter()
        self.misses_by_kind: Counter[str] = Counter()
        self._entries: OrderedDict[tuple[Any, ...], Inversion] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...], length: int) -> Inversion | None:
        """The entry for ``key`` if its trajectory has at least ``length`` latents (counts a hit or miss)."""
        kind = str(key[0]) if key else ""
        entry = self._entries.get(key)
        if entry is None or len(entry.trajectory) < length:
            self.misses += 1
            self.misses_by_kind[kind] += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        self.hits_by_kind[kind] += 1
        return entry

    def put(self, key: tuple[Any, ...], entry: Inversion) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def stats(self) -> dict[str, tuple[int, int]]:
        """{kind: (hits, misses)}."""
        kinds = sorted(set(self.hits_by_kind) | set(self.misses_by_kind))
        return {k: (self.hits_by_kind[k], self.misses_by_kind[k]) for k in kinds}

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0
        self.hits_by_kind.clear()
        self.misses_by_kind.clear()


def inversion_cache(backbone: Backbone) -> InversionCache:
    """The backbone's inversion cache (owned by the backbone, dropped with it)."""
    return backbone.cache("inversion", InversionCache)


def image_digest(image: Image.Image) -> str:
    return hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


def processors_key(backbone: Backbone) -> int:
    # The UNet's attention processors are part of the key: an inversion made while a method has patched
    # them (an adapter, a controller) must not be served to a method running the plain UNet.
    # So are its adapters' weights: a LoRA tuned on the photo (DragDiffusion's) changes the UNet without touching
    # a processor, and two LoRAs with the same name and shapes differ only in their values.
    unet = backbone.unet
    processors = tuple(sorted((name, id(p)) for name, p in unet.attn_processors.items()))
    if not getattr(unet, "peft_config", None):
        return hash(processors)
    with torch.no_grad():
        adapters = tuple(
            (name, float(p.double().sum()), float(p.double().abs().sum()))
            for name, p in unet.named_parameters()
            if "lora_" in name
        )
    scales = tuple(
        (name, tuple(sorted(module.scaling.items())))
        for name, module in unet.named_modules()
        if isinstance(getattr(module, "scaling", None), dict)
    )
    return hash((processors, adapters, scales))
