"""What a method declares: its condition, learning strategy, paper, typed parameters and add-ons.

The UI builds widgets from these declarations and the runner validates values against them, so no
method writes UI code and no tab hard-codes a method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from methods.core.limits import InputError, finite_number, shown
from methods.core.slots import IMAGE, Audio, Box, Drag, EditInputs, RegionPair, Slot

__all__ = ["Audio", "Box", "Drag", "EditInputs", "InputError", "RegionPair", "Slot"]  # re-exported

if TYPE_CHECKING:
    import torch

    from methods.core.backbone import Backbone


class Condition(StrEnum):
    """The survey's input conditions, in the survey's order (= tab order)."""

    TEXT = "text"
    MASK = "mask"
    REFERENCE = "reference"
    POSE = "pose"
    SKETCH = "sketch"
    SEGMENTATION = "segmentation"
    LAYOUT = "layout"
    DRAG = "drag"
    AUDIO = "audio"
    CLASS = "class"

    @property
    def title(self) -> str:
        return _CONDITION_TITLES[self]


_CONDITION_TITLES = {
    Condition.TEXT: "Text",
    Condition.MASK: "Mask",
    Condition.REFERENCE: "Reference image",
    Condition.POSE: "Pose",
    Condition.SKETCH: "Sketch",
    Condition.SEGMENTATION: "Segmentation map",
    Condition.LAYOUT: "Layout",
    Condition.DRAG: "Drag points",
    Condition.AUDIO: "Audio",
    Condition.CLASS: "Class label",
}


class Strategy(StrEnum):
    """The survey's learning strategies."""

    TRAINING_BASED = "training-based"
    TEST_TIME_FINETUNING = "test-time fine-tuning"
    TRAINING_FREE = "training-free"


@dataclass(frozen=True)
class Paper:
    title: str
    year: int
    url: str


@dataclass(frozen=True)
class Param:
    """A typed, bounded hyperparameter. ``kind`` is one of float, int, bool, choice, text."""

    name: str
    kind: str
    default: Any
    label: str = ""
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in {"float", "int", "bool", "choice", "text"}:
            raise ValueError(f"unknown parameter kind {self.kind!r}")
        if self.kind == "choice" and self.default not in self.choices:
            raise ValueError(f"default {self.default!r} of {self.name} is not among {self.choices}")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    def coerce(self, value: Any, owner: str = "") -> Any:
        """Validate a client's ``value`` (None means the default): finite, in range, of the right type. Anything
        else raises InputError with a sentence naming the field (and ``owner``, the method it belongs to)."""
        if value is None:
            return self.default
        what = f"“{self.title}”" + (f" of {owner}" if owner else "")
        if self.kind in {"float", "int"}:
            number = finite_number(value, what, self.minimum, self.maximum)
            return int(round(number)) if self.kind == "int" else number
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
                return value.strip().lower() == "true"
            if isinstance(value, int | float) and value in (0, 1):
                return bool(value)
            raise InputError(f"{what} must be true or false; got {shown(value)}.")
        if self.kind == "choice":
            if value not in self.choices:
                raise InputError(f"{what} must be one of {', '.join(self.choices)}; got {shown(value)}.")
            return value
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise InputError(f"{what} must be text; got {shown(value)}.")
        return str(value)


def FloatParam(name: str, default: float, minimum: float, maximum: float, step: float = 0.05, **kw: Any) -> Param:
    return Param(name, "float", default, minimum=minimum, maximum=maximum, step=step, **kw)


def IntParam(name: str, default: int, minimum: int, maximum: int, step: int = 1, **kw: Any) -> Param:
    return Param(name, "int", default, minimum=minimum, maximum=maximum, step=step, **kw)


def BoolParam(name: str, default: bool, **kw: Any) -> Param:
    return Param(name, "bool", default, **kw)


def ChoiceParam(name: str, default: str, choices: tuple[str, ...], **kw: Any) -> Param:
    return Param(name, "choice", default, choices=choices, **kw)


@dataclass
class MethodOutput:
    image: Image.Image
    info: dict[str, Any] = field(default_factory=dict)  # shown in the caption and the record
    extras: list[tuple[Image.Image, str]] = field(default_factory=list)  # e.g. implicit masks


@dataclass
class RunContext:
    """What the runner hands a method: the shared backbone, the seeded generator, a progress hook."""

    backbone: Backbone
    seed: int
    generator: torch.Generator
    report: Callable[[int, int], None] = lambda step, total: None

    def diffusers_callback(self, total: int, done: int = 0) -> Callable[..., dict[str, Any]]:
        """A ``callback_on_step_end`` that forwards step progress to the UI (``done`` steps came before)."""

        def callback(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            self.report(done + step + 1, total)
            return {}

        return callback


class Method:
    """Base of every method. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    label: ClassVar[str]
    condition: ClassVar[Condition]
    strategy: ClassVar[Strategy]
    paper: ClassVar[Paper]
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    addons: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[Slot, ...]] = (IMAGE,)  # without these the method is a "skipped" cell
    optional: ClassVar[tuple[Slot, ...]] = ()  # read when given (a tab shows their widgets too)

    @classmethod
    def describe(cls) -> str:
        return f"{cls.label} ({cls.paper.year}, {cls.strategy.value})"

    @classmethod
    def resolve_params(cls, values: dict[str, Any] | None) -> dict[str, Any]:
        values = dict(values or {})
        unknown = set(values) - {p.name for p in cls.params}
        if unknown:
            names = ", ".join(sorted(map(str, unknown))[:5])
            known = ", ".join(p.name for p in cls.params) or "none"
            raise InputError(f"{cls.label} has no parameter {names} (its parameters: {known}).")
        return {p.name: p.coerce(values.get(p.name), cls.label) for p in cls.params}

    @classmethod
    def missing_inputs(cls, inputs: EditInputs) -> list[str]:
        return [slot.missing for slot in cls.requires if slot.is_missing(inputs[slot])]

    @classmethod
    def output_size(cls, size: tuple[int, int], params: dict[str, Any], multiple: int) -> tuple[int, int]:
        """The output's size for an input of ``size`` (methods that change the canvas override this)."""
        return size

    @classmethod
    def cost(cls, steps: int, params: dict[str, Any]) -> float:
        """Expected work of one run, in UNet (or DiT) evaluations at the working size: the declared estimate
        ``methods.core.costs`` scales by measured seconds per evaluation. One evaluation = one batch element of one
        forward pass; a forward + backward counts about two to three. ``params`` are the method's resolved params
        (``cls.resolve_params(None)`` gives the defaults). Methods whose work differs override this."""
        return 2.0 * steps  # a plain classifier-free-guided sampler: two evaluations per step

    def run(self, ctx: RunContext, inputs: EditInputs, params: dict[str, Any]) -> MethodOutput:
        raise NotImplementedError
