"""Class-label tab: translate the photo from one ImageNet class to another with a class-conditional model."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, Tab, add_examples, banner, build_tab
from methods.core.imagenet import class_index, class_names
from methods.core.images import load_image, square_image
from methods.core.slots import IMAGE, SOURCE_CLASS, TARGET_CLASS
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.CLASS


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    if values["image"] is None:
        raise InputError("Please upload a photo of an object of the source class.")
    inputs.image = square_image(load_image(values["image"], "the source photo"), hub.backbone.size)
    if values["source_class"] in (None, "") or values["target_class"] in (None, ""):
        raise InputError("Please pick both a source class and a target class.")
    inputs.source_class = class_index(values["source_class"])
    inputs.target_class = class_index(values["target_class"])
    return inputs


def condition_cell(hub: Hub, inputs: EditInputs) -> tuple[Any, str]:
    names = class_names()
    return inputs.image, f"Class translation: {names[inputs.source_class]} → {names[inputs.target_class]}"


TAB = Tab(CONDITION, (IMAGE, SOURCE_CLASS, TARGET_CLASS), build_inputs, condition_cell, guidance=False)

# Example rows by widget name, classes by their ImageNet names (tabby 281 -> tiger 292, missile 657 -> space
# shuttle 812): the photos first (assets/README.md), then the drawn house.
EXAMPLES: list[dict[str, Any]] = [
    {"image": "assets/chelsea.jpg", "source_class": "tabby", "target_class": "tiger"},
    {"image": "assets/rocket.jpg", "source_class": "missile", "target_class": "space shuttle"},
    {"image": "assets/house.png", "source_class": "boathouse", "target_class": "church"},
]


def create_demo(hub: Hub) -> None:
    banner(hub)
    names = class_names()
    with gr.Row():
        image = gr.Image(
            type="pil", label="Source photo (centre-cropped to a square)", sources=["upload"], elem_id="class-image"
        )
        with gr.Column():
            # Custom values: a class id ("281") or a name typed with other capitals is read by class_index, which
            # answers an unknown one with the closest names (Gradio would print all 1000).
            source_class = gr.Dropdown(
                names, value="Persian cat", label="Source class (ImageNet name or id)", allow_custom_value=True
            )
            target_class = gr.Dropdown(
                names, value="golden retriever", label="Target class (ImageNet name or id)", allow_custom_value=True
            )
    widgets = {"image": image, "source_class": source_class, "target_class": target_class}
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
