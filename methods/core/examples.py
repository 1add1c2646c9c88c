"""Ready-made inputs for every condition, built from the files in assets/ (used by tests and bench)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from methods.core.images import binary_mask, fit_image, load_image, square_image
from methods.core.pose import DEFAULT_KEYPOINTS, render_pose
from methods.core.segmenter import SegMap, class_mask
from methods.core.spec import Box, Condition, Drag, EditInputs

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def example_inputs(condition: Condition | str, backbone: Backbone, steps: int = 4) -> EditInputs:
    """A complete, valid input set for ``condition`` at the backbone's working size."""
    condition = Condition(condition)
    photo = fit_image(load_image(ASSETS / "house.png"), backbone.size, backbone.size_multiple)
    size = photo.size
    inputs = EditInputs(image=photo, prompt="a house in the snow, winter", steps=steps, guidance=7.5)
    if condition is Condition.TEXT:
        inputs.source_prompt = "a house on a meadow"
        inputs.instruction = "make it winter"
    elif condition is Condition.MASK:
        inputs.mask = binary_mask(Image.open(ASSETS / "house_mask.png"), size)
        inputs.prompt = "a wooden door"
    elif condition is Condition.REFERENCE:
        inputs.reference = load_image(ASSETS / "reference_pattern.png")
        inputs.prompt = "a house"
        inputs.mask = binary_mask(Image.open(ASSETS / "house_mask.png"), size)  # for the masked reference methods
    elif condition is Condition.POSE:
        inputs.control_image = render_pose(DEFAULT_KEYPOINTS, size)
        inputs.prompt = "an astronaut standing"
        # For the re-pose methods: the region around the skeleton where the person is redrawn.
        width, height = size
        region = Image.new("L", size, 0)
        region.paste(255, (int(width * 0.25), int(height * 0.08), int(width * 0.75), int(height * 0.95)))
        inputs.mask = binary_mask(region, size)
    elif condition is Condition.SKETCH:
        sketch = load_image(ASSETS / "sketch_house.png").convert("L").resize(size)
        inputs.control_image = Image.eval(sketch, lambda v: 255 - v).convert("RGB")
        inputs.prompt = "a house with a tree"
        # For SDEdit from strokes: a colour stroke painting of the same scene (sky, meadow, house, roof, sun).
        width, height = size
        painting = Image.new("RGB", size, (110, 160, 225))
        painting.paste((80, 150, 60), (0, int(height * 0.65), width, height))
        painting.paste((170, 90, 60), (int(width * 0.2), int(height * 0.45), int(width * 0.5), int(height * 0.75)))
        painting.paste((120, 40, 30), (int(width * 0.17), int(height * 0.35), int(width * 0.53), int(height * 0.45)))
        painting.paste((245, 215, 70), (int(width * 0.72), int(height * 0.1), int(width * 0.86), int(height * 0.24)))
        inputs.extra_controls["strokes"] = painting
    elif condition is Condition.SEGMENTATION:
        inputs.control_image = load_image(ASSETS / "segmap_village.png").resize(size, Image.Resampling.NEAREST)
        inputs.prompt = "a village by a lake"
        # For multi-condition methods: a pose skeleton as a second map; for region edits: the map's "water".
        inputs.extra_controls["pose"] = render_pose(DEFAULT_KEYPOINTS, size)
        inputs.mask = class_mask(SegMap.from_image(inputs.control_image), "water")
    elif condition is Condition.LAYOUT:
        inputs.boxes = [Box(0.1, 0.55, 0.5, 0.9, "a red car"), Box(0.6, 0.1, 0.95, 0.8, "a green tree")]
        inputs.prompt = "a street with a red car and a green tree"
    elif condition is Condition.DRAG:
        width, height = size
        inputs.drags = [Drag((int(width * 0.35), int(height * 0.55)), (int(width * 0.55), int(height * 0.55)))]
        region = Image.new("L", size, 0)
        region.paste(255, (int(width * 0.2), int(height * 0.3), int(width * 0.75), int(height * 0.8)))
        inputs.mask = binary_mask(region, size)
        inputs.prompt = "a house on a meadow"
    elif condition is Condition.AUDIO:
        from methods.core.audio import load_audio

        inputs.audio = load_audio(str(ASSETS / "rain.wav"))
        inputs.prompt = "a house"
    elif condition is Condition.CLASS:
        inputs.image = square_image(photo, backbone.size)
        inputs.source_class, inputs.target_class = 449, 497  # boathouse -> church
    return inputs
