"""One good request per endpoint, by API parameter name (the assets shipped in ``assets/``): what the API tests,
the hostile-input tests and the soak benchmark send, and a starting point for a ``gradio_client`` script."""

from __future__ import annotations

import json
from pathlib import Path

from gradio_client import handle_file

from methods.core.pose import DEFAULT_KEYPOINTS

ASSETS = Path(__file__).resolve().parents[1] / "assets"
HOUSE = handle_file(str(ASSETS / "house.png"))


def editor(path: Path | None) -> dict:
    return {"background": handle_file(str(path)) if path else None, "layers": [], "composite": None, "id": None}


REQUESTS: dict[str, dict] = {
    "text": {
        "image": HOUSE,
        "prompt": "a house in the snow",
        "source_prompt": "a house",
        "instruction": "make it winter",
    },
    "mask": {
        "image": HOUSE,
        "mask_drawing": None,
        "mask_image": handle_file(str(ASSETS / "house_mask.png")),
        "prompt": "a wooden door",
    },
    "reference": {
        "image": HOUSE,
        "reference": handle_file(str(ASSETS / "reference_pattern.png")),
        "prompt": "a house",
        "mask_drawing": None,
        "mask_image": handle_file(str(ASSETS / "house_mask.png")),
    },
    "pose": {
        "image": HOUSE,
        "pose_mode": "keypoints",
        "pose_photo": None,
        "pose_map": None,
        "keypoints": json.dumps([list(p) for p in DEFAULT_KEYPOINTS]),
        "prompt": "an astronaut",
        "mask_image": handle_file(str(ASSETS / "house_mask.png")),  # the re-pose methods redraw inside it
    },
    "sketch": {
        "sketch": None,
        "sketch_upload": handle_file(str(ASSETS / "sketch_house.png")),
        "image": None,
        "prompt": "a house with a tree",
    },
    "segmentation": {
        "segmap": editor(ASSETS / "segmap_village.png"),
        "image": HOUSE,
        "prompt": "a village",
        "region_mode": "class",
        "region_class": "water",
        "pose_mode": "keypoints",
    },
    "layout": {
        "image": None,
        "boxes": json.dumps([{"phrase": "a red car", "box": [0.1, 0.5, 0.5, 0.9]}]),
        "prompt": "a street",
    },
    "drag": {"image": HOUSE, "drag_points": "[[0.35, 0.55, 0.6, 0.55]]", "mask_drawing": None, "prompt": ""},
    "audio": {"image": HOUSE, "audio": handle_file(str(ASSETS / "rain.wav")), "prompt": "a house"},
    "class": {"image": HOUSE, "source_class": "boathouse", "target_class": "church"},
}
