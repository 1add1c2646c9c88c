"""Input slots: the typed vocabulary of what a method can ask for, and the container that carries the values.

A method declares the slots it ``requires`` (without them it is a "skipped" cell that says what is missing) and
those it reads when they are given (``optional``). Each slot knows its value type, the sentence shown when it is
missing, and how to make an example value for tests and benchmarks. Its widget and how to read it live in
``demos/slots.py``; a tab renders the slots its own widgets do not provide. A method that needs a new kind of
input defines a new ``Slot`` next to itself (or here, when several methods share it): no tab, runner or example
code changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from methods.core.backbone import Backbone
    from methods.core.spec import Condition

_ORDER = itertools.count()


@dataclass(frozen=True)
class Box:
    """A layout box in relative coordinates (0..1) with the phrase that should fill it."""

    x0: float
    y0: float
    x1: float
    y1: float
    phrase: str

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]


@dataclass(frozen=True)
class Drag:
    """A handle point to move onto a target point, in pixels of the working image."""

    handle: tuple[int, int]
    target: tuple[int, int]


@dataclass(frozen=True)
class RegionPair:
    """A handle region to move onto a target region: two boxes (x0, y0, x1, y1) in pixels of the working image,
    x1 / y1 exclusive. Region-based drag methods (RegionDrag) map the handle region onto the target one."""

    handle: tuple[int, int, int, int]
    target: tuple[int, int, int, int]


@dataclass
class Audio:
    waveform: np.ndarray  # mono float32 in [-1, 1]
    sampling_rate: int

    @property
    def seconds(self) -> float:
        return len(self.waveform) / float(self.sampling_rate)


@dataclass
class Scene:
    """What an example value is made from: the backbone, the condition, the working size, the slots made so far."""

    backbone: Backbone
    condition: Condition
    size: tuple[int, int]
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Slot:
    """One kind of input. ``kind`` is its value type (image, mask, text, boxes, drags, audio, class); a slot whose
    name is an ``EditInputs`` field is stored there, any other in ``EditInputs.slot_values``."""

    name: str
    kind: str
    title: str  # what the widget group is called ("Mask", "Second condition: pose")
    missing: str  # completes "<method> needs …"
    example: Callable[[Scene], Any] | None = None
    order: int = field(default_factory=lambda: next(_ORDER), compare=False)

    def __post_init__(self) -> None:
        if self.kind not in VALUE_TYPES:
            raise ValueError(f"unknown slot kind {self.kind!r} (known: {', '.join(VALUE_TYPES)})")

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Slot) and other.name == self.name

    def __repr__(self) -> str:
        return f"Slot({self.name})"

    def is_missing(self, value: Any) -> bool:
        return value is None or (isinstance(value, str | list) and not value)

    def check(self, value: Any) -> Any:
        """The value, if it is of the slot's type (None = not given); a wrong type is a programming error."""
        if value is not None and not isinstance(value, VALUE_TYPES[self.kind]):
            raise TypeError(f"slot {self.name!r} holds {self.kind}, not {type(value).__name__}")
        return value

    def empty(self) -> Any:
        return [] if self.kind in {"boxes", "drags", "regions"} else "" if self.kind == "text" else None

    def example_value(self, scene: Scene) -> Any:
        if self.example is None:
            raise ValueError(f"slot {self.name!r} has no example value")
        return self.example(scene)


VALUE_TYPES: dict[str, type | tuple[type, ...]] = {
    "image": Image.Image,
    "mask": Image.Image,  # "L", 255 = region
    "text": str,
    "boxes": list,
    "drags": list,
    "regions": list,
    "audio": Audio,
    "class": int,
}


# -- example values (assets/, at the scene's working size) -------------------------------------------------
def _asset(name: str) -> str:
    from methods.core.examples import ASSETS

    return str(ASSETS / name)


def _photo(scene: Scene) -> Image.Image:
    from methods.core.images import fit_image, load_image

    return fit_image(load_image(_asset("house.png")), scene.backbone.size, scene.backbone.size_multiple)


def _door_mask(scene: Scene) -> Image.Image:
    from methods.core.images import binary_mask

    return binary_mask(Image.open(_asset("house_mask.png")), scene.size)


def _reference(scene: Scene) -> Image.Image:
    from methods.core.images import load_image

    return load_image(_asset("reference_pattern.png"))


def _boxes(scene: Scene) -> list[Box]:
    return [Box(0.1, 0.55, 0.5, 0.9, "a red car"), Box(0.6, 0.1, 0.95, 0.8, "a green tree")]


def _drags(scene: Scene) -> list[Drag]:
    width, height = scene.size
    return [Drag((int(width * 0.35), int(height * 0.55)), (int(width * 0.55), int(height * 0.55)))]


def _regions(scene: Scene) -> list[RegionPair]:
    """The example drag as regions: a square around the handle moved onto the same square around the target."""
    width, height = scene.size
    side = max(8, min(width, height) // 6)
    hx, hy, tx, ty = int(width * 0.35), int(height * 0.55), int(width * 0.55), int(height * 0.55)
    return [RegionPair((hx - side, hy - side, hx + side, hy + side), (tx - side, ty - side, tx + side, ty + side))]


def _audio(scene: Scene) -> Audio:
    from methods.core.audio import load_audio

    return load_audio(_asset("rain.wav"))


def _standing_pose(scene: Scene) -> Image.Image:
    from methods.core.pose import DEFAULT_KEYPOINTS, render_pose

    return render_pose(DEFAULT_KEYPOINTS, scene.size)


def _stroke_painting(scene: Scene) -> Image.Image:
    """A colour stroke painting of the house scene: sky, meadow, house, roof, sun."""
    width, height = scene.size
    painting = Image.new("RGB", scene.size, (110, 160, 225))
    painting.paste((80, 150, 60), (0, int(height * 0.65), width, height))
    painting.paste((170, 90, 60), (int(width * 0.2), int(height * 0.45), int(width * 0.5), int(height * 0.75)))
    painting.paste((120, 40, 30), (int(width * 0.17), int(height * 0.35), int(width * 0.53), int(height * 0.45)))
    painting.paste((245, 215, 70), (int(width * 0.72), int(height * 0.1), int(width * 0.86), int(height * 0.24)))
    return painting


def _water_of_the_map(scene: Scene) -> Image.Image:
    from methods.core.segmenter import SegMap, class_mask

    return class_mask(SegMap.from_image(scene.values["control_image"]), "water")


def _text(value: str) -> Callable[[Scene], str]:
    return lambda scene: value


# -- the vocabulary (definition order = the order tabs render them and the API lists them) ------------------
IMAGE = Slot("image", "image", "Source photo", "a source image", _photo)
PROMPT = Slot("prompt", "text", "Prompt", "a target prompt", _text("a house in the snow, winter"))
SOURCE_PROMPT = Slot(
    "source_prompt", "text", "Source prompt", "a source prompt (describing the photo)", _text("a house on a meadow")
)
INSTRUCTION = Slot(
    "instruction", "text", "Instruction", "an instruction (e.g. “make it winter”)", _text("make it winter")
)
NEGATIVE_PROMPT = Slot("negative_prompt", "text", "Negative prompt", "a negative prompt", _text(""))
MASK = Slot("mask", "mask", "Mask", "a mask (draw or upload the region to edit)", _door_mask)
CONDITION_MAP = Slot("control_image", "image", "Condition map", "a condition map")
REFERENCE = Slot("reference", "image", "Reference image", "a reference image", _reference)
BOXES = Slot("boxes", "boxes", "Layout boxes", "at least one box with a phrase", _boxes)
DRAGS = Slot("drags", "drags", "Drag points", "at least one handle → target point pair", _drags)
REGIONS = Slot(
    "region_pairs",
    "regions",
    "Drag regions",
    "at least one handle region → target region pair (or drag points to make them from)",
    _regions,
)
AUDIO = Slot("audio", "audio", "Sound clip", "an audio clip", _audio)
SOURCE_CLASS = Slot("source_class", "class", "Source class", "a source class", lambda scene: 449)  # boathouse
TARGET_CLASS = Slot("target_class", "class", "Target class", "a target class", lambda scene: 497)  # church
# Further inputs, stored in EditInputs.slot_values.
STROKES = Slot(
    "strokes",
    "image",
    "Stroke painting",
    "a stroke painting (draw coloured strokes on the canvas, or upload a painting)",
    _stroke_painting,
)
MAP_REGION = Slot(
    "map_region",
    "mask",
    "Region of the map to regenerate",
    "a region of the map (pick one under “Region of the map to regenerate”)",
    _water_of_the_map,
)
SECOND_POSE = Slot(
    "second_pose",
    "image",
    "Second condition: pose",
    "a pose map as the second condition (choose one under “Second condition: pose”)",
    _standing_pose,
)
SOUND_LABELS = Slot("sound_labels", "text", "Tag vocabulary", "a tag vocabulary", _text(""))


@dataclass
class EditInputs:
    """Every slot's value, already normalised to the backbone's working size (index it with a ``Slot``)."""

    image: Image.Image | None = None
    prompt: str = ""
    source_prompt: str = ""
    instruction: str = ""  # for instruction-following methods ("make it winter")
    negative_prompt: str = ""
    mask: Image.Image | None = None  # "L", 255 = region to edit
    control_image: Image.Image | None = None  # pose skeleton, sketch, segmentation map
    reference: Image.Image | None = None
    boxes: list[Box] = field(default_factory=list)
    drags: list[Drag] = field(default_factory=list)
    audio: Audio | None = None
    source_class: int | None = None
    target_class: int | None = None
    steps: int = 20
    guidance: float = 7.5
    slot_values: dict[str, Any] = field(default_factory=dict)  # the slots without a field of their own, by name
    captions: list[str] = field(default_factory=list)  # how the tab made the inputs, for the condition cell

    def __getitem__(self, slot: Slot) -> Any:
        if slot.name in _FIELDS:
            return getattr(self, slot.name)
        return self.slot_values.get(slot.name)

    def __setitem__(self, slot: Slot, value: Any) -> None:
        slot.check(value)
        if slot.name in _FIELDS:
            setattr(self, slot.name, slot.empty() if value is None and slot.empty() is not None else value)
        elif value is None:
            self.slot_values.pop(slot.name, None)
        else:
            self.slot_values[slot.name] = value


_FIELDS = {f.name for f in fields(EditInputs)} - {"steps", "guidance", "slot_values", "captions"}


def ordered(slots: Any) -> list[Slot]:
    """Distinct slots in definition order."""
    return sorted(set(slots), key=lambda s: s.order)
