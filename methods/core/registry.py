"""The method registry: a decorator registers each method; listing and filtering come from here."""

from __future__ import annotations

from methods.core.spec import Condition, Method

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a method to the registry (names are unique)."""
    for attribute in ("name", "label", "condition", "strategy", "paper"):
        if not hasattr(cls, attribute):
            raise TypeError(f"{cls.__name__} must declare `{attribute}`")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}") from None


def list_methods(condition: Condition | str | None = None) -> list[type[Method]]:
    """Registered methods (all: grouped by condition in the survey's order), or those of one condition."""
    if condition is None:
        order = list(Condition)
        return sorted(_REGISTRY.values(), key=lambda m: order.index(m.condition))
    condition = Condition(condition)
    return [m for m in _REGISTRY.values() if m.condition == condition]


def method_by_label(label: str) -> type[Method]:
    for method in _REGISTRY.values():
        if method.label == label or method.name == label:
            return method
    raise KeyError(f"unknown method {label!r}; known methods: {', '.join(m.label for m in _REGISTRY.values())}")


def unregister(name: str) -> None:
    """Remove a method (tests that register a throwaway method put the registry back with this)."""
    _REGISTRY.pop(name, None)
