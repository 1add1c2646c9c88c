"""Reference-image tab: edit the photo (or generate) guided by an exemplar image."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, banner, build_tab
from demos.widgets import Photo
from methods.core.images import load_image
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


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = Photo(
            type="pil",
            label="Source photo (optional: without it, methods generate)",
            sources=["upload", "clipboard"],
            elem_id="reference-image",
        )
        reference = Photo(
            type="pil", label="Reference image", sources=["upload", "clipboard"], elem_id="reference-reference"
        )
    with gr.Row():
        prompt = gr.Textbox(value="", label="Prompt (optional)", placeholder="best quality")
        negative_prompt = gr.Textbox(value="", label="Negative prompt (optional)")
    widgets = {"image": image, "reference": reference, "prompt": prompt, "negative_prompt": negative_prompt}
    build_tab(hub, CONDITION, widgets, build_inputs)
    gr.Examples(
        [["assets/house.png", "assets/reference_pattern.png", "a house", ""]],
        inputs=[image, reference, prompt, negative_prompt],
    )
