"""Mask tab: repaint the region you paint (or upload as a white-on-black mask) from a prompt."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, banner, build_tab
from demos.widgets import Photo, editor_background, mask_editor, mask_from
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.MASK


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    source = values["image"] if values["image"] is not None else editor_background(values["mask_drawing"])
    inputs.image = hub.source_image(source)
    inputs.mask = mask_from(values["mask_drawing"], values["mask_image"], inputs.image.size)
    if inputs.mask is None:
        raise InputError("Please paint the region to edit on the photo (or upload a white-on-black mask).")
    inputs.prompt = (values["prompt"] or "").strip()
    inputs.negative_prompt = (values["negative_prompt"] or "").strip()
    if not inputs.prompt:
        raise InputError("Please write a prompt: what should fill the masked region.")
    return inputs


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = Photo(type="pil", label="Source photo", sources=["upload", "clipboard"], elem_id="mask-image")
        drawing = mask_editor(elem_id="mask-drawing")
    with gr.Row():
        mask_image = Photo(type="pil", label="…or upload a mask (white = edit)", sources=["upload"], height=160)
        with gr.Column():
            prompt = gr.Textbox(value="", label="Prompt for the masked region", placeholder="a wooden bench")
            negative_prompt = gr.Textbox(value="", label="Negative prompt (optional)")
    # The uploaded photo becomes the editor's background, so the mask is painted over it.
    image.change(lambda im: im, inputs=image, outputs=drawing, api_visibility="private")
    widgets = {
        "image": image,
        "mask_drawing": drawing,
        "mask_image": mask_image,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
    }
    build_tab(hub, CONDITION, widgets, build_inputs)
    gr.Examples(
        [["assets/house.png", None, "assets/house_mask.png", "a wooden door", ""]],
        inputs=[image, drawing, mask_image, prompt, negative_prompt],
    )
