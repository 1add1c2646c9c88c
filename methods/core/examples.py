"""Ready-made inputs for every condition, built from the files in assets/ (used by tests and bench).

A condition's scene gives the values its tab's own widgets would (the photo, the condition map, a prompt that
fits it); every further slot one of the condition's methods requires gets that slot's example value. So a new
method, or a new slot, needs no line here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from methods.core.images import binary_mask, load_image, square_image
from methods.core.registry import list_methods
from methods.core.slots import (
    CONDITION_MAP,
    IMAGE,
    INSTRUCTION,
    MASK,
    PROMPT,
    SOURCE_PROMPT,
    EditInputs,
    Scene,
    Slot,
    ordered,
)
from methods.core.spec import Condition

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def _rectangle(left: float, top: float, right: float, bottom: float) -> Callable[[Scene], Image.Image]:
    """A mask covering a rectangle given in fractions of the working size."""

    def make(scene: Scene) -> Image.Image:
        width, height = scene.size
        region = Image.new("L", scene.size, 0)
        region.paste(255, (int(width * left), int(height * top), int(width * right), int(height * bottom)))
        return binary_mask(region, scene.size)

    return make


def _sketch_lines(scene: Scene) -> Image.Image:
    sketch = load_image(ASSETS / "sketch_house.png").convert("L").resize(scene.size)
    return Image.eval(sketch, lambda v: 255 - v).convert("RGB")


def _pose(scene: Scene) -> Image.Image:
    from methods.core.pose import DEFAULT_KEYPOINTS, render_pose

    return render_pose(DEFAULT_KEYPOINTS, scene.size)


def _village_map(scene: Scene) -> Image.Image:
    return load_image(ASSETS / "segmap_village.png").resize(scene.size, Image.Resampling.NEAREST)


def _square_photo(scene: Scene) -> Image.Image:
    return square_image(IMAGE.example_value(scene), scene.backbone.size)


# What each tab's own widgets hold in the example: a value, or a function of the scene.
SCENES: dict[Condition, dict[Slot, Any]] = {
    Condition.TEXT: {SOURCE_PROMPT: "a house on a meadow", INSTRUCTION: "make it winter"},
    Condition.MASK: {PROMPT: "a wooden door"},
    Condition.REFERENCE: {PROMPT: "a house"},
    # The region around the skeleton where the person is redrawn.
    Condition.POSE: {CONDITION_MAP: _pose, PROMPT: "an astronaut standing", MASK: _rectangle(0.25, 0.08, 0.75, 0.95)},
    Condition.SKETCH: {CONDITION_MAP: _sketch_lines, PROMPT: "a house with a tree"},
    Condition.SEGMENTATION: {CONDITION_MAP: _village_map, PROMPT: "a village by a lake"},
    Condition.LAYOUT: {PROMPT: "a street with a red car and a green tree"},
    # The region allowed to move.
    Condition.DRAG: {MASK: _rectangle(0.2, 0.3, 0.75, 0.8), PROMPT: "a house on a meadow"},
    Condition.AUDIO: {PROMPT: "a house"},
    Condition.CLASS: {IMAGE: _square_photo},
}


def example_inputs(condition: Condition | str, backbone: Backbone, steps: int = 4) -> EditInputs:
    """A complete, valid input set for ``condition`` at the backbone's working size."""
    condition = Condition(condition)
    photo = IMAGE.example_value(Scene(backbone, condition, (backbone.size, backbone.size)))
    scene = Scene(backbone, condition, photo.size)
    given = SCENES[condition]
    needed = [IMAGE, PROMPT, *given, *(slot for method in list_methods(condition) for slot in method.requires)]
    inputs = EditInputs(steps=steps, guidance=7.5)
    for slot in ordered(needed):
        value = given.get(slot, slot.example_value)
        inputs[slot] = scene.values[slot.name] = value(scene) if callable(value) else value
    return inputs
