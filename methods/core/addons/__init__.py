"""The add-on table: every model a method may borrow, by name.

Each entry names the real checkpoint (model id + subfolder/file, overridable with HUB_ADDON_<NAME>),
the loader that reads it (the same for real and tiny weights), and the tiny builder that writes a
random-weight copy in the same layout for the tiny profile.

The specs live by family, one module each (``FAMILIES``), with the family's tiny builders in a
``tiny_<family>`` module beside it. A spec names its builder by string ("package.module:function"),
so reading the table never imports the random-weight builders; ``AddonSpec.builder`` imports one
when the tiny profile first builds that add-on. The family modules themselves are imported when the
table is first read, which keeps ``evaluation`` (the metric models) out of ``methods.core``'s imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

# Each module defines ``SPECS``, a tuple of AddonSpec.
FAMILIES = (
    "methods.core.addons.unets",
    "methods.core.addons.controlnets",
    "methods.core.addons.adapters",
    "methods.core.addons.encoders",
    "methods.core.addons.annotators",
    "methods.core.addons.classifiers",
    "methods.core.addons.speech",
    "methods.core.addons.imagebind",
    "methods.core.addons.audiotoken",
    "evaluation.metric_models",
)


@dataclass(frozen=True)
class WeightsFile:
    """Weights that a diffusers loader (e.g. ``load_ip_adapter``) reads itself, by location."""

    location: str
    subfolder: str
    weight_name: str


@dataclass(frozen=True)
class AddonSpec:
    name: str
    description: str
    repo: str
    load: Callable[[str, AddonSpec, Backbone], Any]
    build_tiny: str  # "package.module:function", a function writing the tiny weights into a folder
    subfolder: str | None = None
    weight_name: str | None = None
    variant: str | None = None  # "fp16" where the real repo has half-precision files (loaded first, half the bytes)
    build_full: str = ""  # "package.module:function" writing the real architecture with seeded random weights
    # What the loader reads from the repo (for ``python -m methods prefetch``): folders end with "/", "" is the root
    # folder; empty = the weight file, else the subfolder, else the root.
    files: tuple[str, ...] = ()
    # The checkpoint's licence as its model card states it, e.g. "CC BY-NC 4.0 (non-commercial)"; a licence that
    # forbids commercial use says "non-commercial" so the UI can warn.
    licence: str = ""

    @property
    def non_commercial(self) -> bool:
        return "non-commercial" in self.licence.lower() or "by-nc" in self.licence.lower()

    def download(self) -> tuple[str, ...]:
        if self.files:
            return self.files
        if self.weight_name:
            return (f"{self.subfolder}/{self.weight_name}" if self.subfolder else self.weight_name,)
        return (f"{self.subfolder}/" if self.subfolder else "",)

    def builder(self) -> Callable[[Path], None]:
        """The tiny builder, imported now."""
        module, _, function = self.build_tiny.partition(":")
        return getattr(importlib.import_module(module), function)

    def build(self, folder: Path) -> None:
        """Write the tiny weights into ``folder`` (the builder is imported only when called)."""
        self.builder()(folder)


def frozen_model(class_path: str) -> Callable[[str, AddonSpec, Backbone], Any]:
    """A loader for one ``from_pretrained`` model class ("package.Class", imported at first load): the
    checkpoint in the backbone's dtype, on its device, in eval mode with gradients off."""

    def load(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
        from methods.core.loading import load_model

        module, name = class_path.rsplit(".", 1)
        model_class = getattr(importlib.import_module(module), name)
        model = load_model(
            model_class, location, variant=backbone.variant(spec), subfolder=spec.subfolder, dtype=backbone.dtype
        )
        return model.to(backbone.device).eval().requires_grad_(False)

    return load


class _Table(Mapping[str, AddonSpec]):
    """Name -> spec over the family modules, which are imported at the first read."""

    def __init__(self, families: tuple[str, ...]) -> None:
        self._families = families
        self._specs: dict[str, AddonSpec] | None = None

    def _all(self) -> dict[str, AddonSpec]:
        if self._specs is None:
            specs: dict[str, AddonSpec] = {}
            for family in self._families:
                for spec in importlib.import_module(family).SPECS:
                    if spec.name in specs:
                        raise ValueError(f"add-on {spec.name!r} is declared twice (again in {family})")
                    specs[spec.name] = spec
            self._specs = specs
        return self._specs

    def __getitem__(self, name: str) -> AddonSpec:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


ADDONS: Mapping[str, AddonSpec] = _Table(FAMILIES)


def get_addon_spec(name: str) -> AddonSpec:
    try:
        return ADDONS[name]
    except KeyError:
        raise KeyError(f"unknown add-on {name!r}; known add-ons: {', '.join(sorted(ADDONS))}") from None
