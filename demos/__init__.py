"""The UI: one module per condition tab, each exposing ``CONDITION`` and ``create_demo(hub)``."""

from __future__ import annotations

import importlib
from types import ModuleType

# The survey's order of conditions.
TAB_MODULES = ("text", "mask", "reference", "pose", "sketch", "segmentation", "layout", "drag", "audio", "classlabel")


def tabs() -> list[ModuleType]:
    return [importlib.import_module(f"demos.{name}") for name in TAB_MODULES]
