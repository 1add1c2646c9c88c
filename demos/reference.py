"""Reference-image tab: edit the photo (or generate) guided by an exemplar image.

The methods that work inside a mask declare one: its widgets (painted over the source photo, or uploaded
white-on-black) appear under their own accordion, and without a mask those methods say so in their cell.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, Tab, add_examples, banner, build_tab, prompt_text
from methods.core.images import load_image, mask_overlay, side_by_side
from methods.core.slots import IMAGE, NEGATIVE_PROMPT, PROMPT, REFERENCE
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.REFERENCE


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"], required=False)
    if values["reference"] is None:
        raise InputError("Please upload a reference image: the exemplar whose content or style should transfer.")
    inputs.reference = load_image(values["reference"], "the reference image")
    inputs.prompt = (values["prompt"] or "").strip()
    inputs.negative_prompt = (values["negative_prompt"] or "").strip()
    return inputs


def condition_cell(hub: Hub, inputs: EditInputs) -> tuple[Any, str]:
    if inputs.image is None:
        return inputs.reference, f"Reference image (no source: generation) · {prompt_text(inputs)}"
    source = mask_overlay(inputs.image, inputs.mask) if inputs.mask is not None else inputs.image
    masked = " (red = mask)" if inputs.mask is not None else ""
    return side_by_side(source, inputs.reference), f"Source{masked} | reference · {prompt_text(inputs)}"


TAB = Tab(CONDITION, (IMAGE, REFERENCE, PROMPT, NEGATIVE_PROMPT), build_inputs, condition_cell)

# Example rows by widget name (the mask is the mask slot's upload): the photos first (assets/README.md), then
# the drawn house.
EXAMPLES: list[dict[str, Any]] = [
    {
        "image": "assets/coffee.jpg",
        "mask_image": "assets/coffee_mask.png",
        "reference": "assets/hubble_deep_field.jpg",
        "prompt": "a cup of coffee with a swirling galaxy pattern",
    },
    {
        "image": "assets/astronaut.jpg",
        "mask_image": "assets/astronaut_helmet_mask.png",
        "reference": "assets/chelsea.jpg",
        "prompt": "an astronaut holding a cat",
    },
    {
        "image": "assets/house.png",
        "mask_image": "assets/house_mask.png",
        "reference": "assets/reference_pattern.png",
        "prompt": "a house",
    },
]


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = gr.Image(
            type="pil",
            label="Source photo (optional: without it, methods generate)",
            sources=["upload", "clipboard"],
            elem_id="reference-image",
        )
        reference = gr.Image(
            type="pil", label="Reference image", sources=["upload", "clipboard"], elem_id="reference-reference"
        )
    with gr.Row():
        prompt = gr.Textbox(
            value="",
            label="Prompt (optional; a method that learns a word for the reference calls it <ref>)",
            placeholder="best quality",
        )
        negative_prompt = gr.Textbox(value="", label="Negative prompt (optional)")
    widgets = {"image": image, "reference": reference, "prompt": prompt, "negative_prompt": negative_prompt}
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
