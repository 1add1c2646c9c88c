"""Audio tab: a sound clip (upload or record) is tagged by CLAP; the tags steer the edit."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, banner, build_tab
from methods.core import audio as audio_tools
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.AUDIO


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"])
    if values["audio"] is None:
        raise InputError("Please upload or record an audio clip.")
    inputs.audio = audio_tools.load_audio(values["audio"])
    inputs.prompt = (values["prompt"] or "").strip()
    inputs.notes["labels"] = list(
        audio_tools.parse_labels(values["labels"])
    )  # methods without their own vocabulary use this one
    inputs.notes["tags"] = audio_tools.clap_tags(hub.backbone, inputs.audio, inputs.notes["labels"], top_k=3)
    return inputs


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = gr.Image(type="pil", label="Source photo", sources=["upload", "clipboard"], elem_id="audio-image")
        with gr.Column():
            clip = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Sound clip (≤ 30 s)", elem_id="audio-clip"
            )
            prompt = gr.Textbox(value="", label="Base description of the photo (optional)")
            labels = gr.Textbox(value="", label="Tag vocabulary (comma-separated; empty = built-in everyday sounds)")
    widgets = {"image": image, "audio": clip, "prompt": prompt, "labels": labels}
    build_tab(hub, CONDITION, widgets, build_inputs)
    gr.Examples([["assets/house.png", "assets/rain.wav", "a house", ""]], inputs=[image, clip, prompt, labels])
