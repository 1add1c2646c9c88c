"""The UI: one module per condition tab, each exposing ``CONDITION``, ``TAB`` and ``create_demo(hub)``."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from methods.core.spec import Condition


def tabs() -> list[ModuleType]:
    """Every tab module (one per ``Condition``), in the survey's order of conditions."""
    found: dict[Condition, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        condition = getattr(module, "CONDITION", None)
        if isinstance(condition, Condition) and hasattr(module, "create_demo"):
            found[condition] = module
    missing = [c.value for c in Condition if c not in found]
    if missing:
        raise RuntimeError(f"no tab module for the conditions {missing}")
    return [found[c] for c in Condition]
