"""Reference-image tab: edit the photo (or generate) guided by an exemplar image, optionally inside a mask.

The mask (painted over the source photo, or uploaded white-on-black) is optional: the masked methods
(Paint-by-Example, IP-Adapter inside a mask) need it and say so in their cell when it is missing; the
others ignore it.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, banner, build_tab, on_draw
from demos.widgets import editor_background, mask_editor, mask_from
from methods.core.images import load_image
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.REFERENCE


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    drawing = values.get("mask_drawing")
    source = values["image"] if values["image"] is not None else editor_background(drawing)
    inputs.image = hub.source_image(source, required=False)
    if values["reference"] is None:
        raise InputError("Please upload a reference image: the exemplar whose content or style should transfer.")
    inputs.reference = load_image(values["reference"], "the reference image")
    if inputs.image is not None:
        inputs.mask = mask_from(drawing, values.get("mask_image"), inputs.image.size)
    elif values.get("mask_image") is not None:
        raise InputError("A mask needs a source photo: please upload the photo the mask belongs to.")
    inputs.prompt = (values["prompt"] or "").strip()
    inputs.negative_prompt = (values["negative_prompt"] or "").strip()
    return inputs


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
        drawing = mask_editor(
            label="Mask (for Paint-by-Example / IP-Adapter inside a mask): paint where the reference goes",
            elem_id="reference-mask-drawing",
        )
        with gr.Column():
            mask_image = gr.Image(type="pil", label="…or upload a mask (white = edit)", sources=["upload"], height=160)
            prompt = gr.Textbox(
                value="",
                label="Prompt (optional; Textual Inversion's new word is <ref>)",
                placeholder="best quality",
            )
            negative_prompt = gr.Textbox(value="", label="Negative prompt (optional)")
    # The uploaded photo becomes the editor's background, so the mask is painted over it.
    on_draw(image.change, lambda im: im, image, drawing)
    widgets = {
        "image": image,
        "reference": reference,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "mask_drawing": drawing,
        "mask_image": mask_image,
    }
    build_tab(hub, CONDITION, widgets, build_inputs)
    gr.Examples(
        [["assets/house.png", "assets/reference_pattern.png", "a house", "", None, "assets/house_mask.png"]],
        inputs=[image, reference, prompt, negative_prompt, drawing, mask_image],
    )
