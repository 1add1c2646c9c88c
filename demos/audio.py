"""Audio tab: a sound clip (upload or record) and a tag vocabulary; the condition cell shows its CLAP tags."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, Tab, add_examples, banner, build_tab
from methods.core import audio as audio_tools
from methods.core.images import text_card
from methods.core.slots import AUDIO, IMAGE, PROMPT, SOUND_LABELS
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.AUDIO


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"])
    if values["audio"] is None:
        raise InputError("Please upload or record an audio clip.")
    inputs.audio = audio_tools.load_audio(values["audio"])
    inputs.prompt = (values["prompt"] or "").strip()
    audio_tools.parse_labels(values["labels"])  # a bad vocabulary is refused before any method runs
    inputs[SOUND_LABELS] = (values["labels"] or "").strip()  # methods without their own vocabulary use this one
    return inputs


def condition_cell(hub: Hub, inputs: EditInputs) -> tuple[Any, str]:
    size = hub.working_size(inputs.image)
    if inputs.audio is None:
        return text_card("no audio", size), "no audio"
    labels = audio_tools.parse_labels(inputs[SOUND_LABELS])
    tags = audio_tools.clap_tags(hub.backbone, inputs.audio, labels, top_k=3)
    tag_text = ", ".join(f"{label} {score:.2f}" for label, score in tags) or "no tags"
    return audio_tools.spectrogram(inputs.audio, size), f"Audio {inputs.audio.seconds:.1f}s · CLAP tags: {tag_text}"


TAB = Tab(CONDITION, (IMAGE, AUDIO, PROMPT, SOUND_LABELS), build_inputs, condition_cell, addons=("clap",))

# Example rows by widget name: the photos first (assets/README.md), then the drawn house.
EXAMPLES: list[dict[str, Any]] = [
    {
        "image": "assets/coffee.jpg",
        "audio": "assets/rain.wav",
        "prompt": "a cup of coffee on a wooden table",
        "labels": "",
    },
    {
        "image": "assets/chelsea.jpg",
        "audio": "assets/bell.wav",
        "prompt": "a photo of a cat",
        "labels": "church bells, a cat meowing, rain, birds chirping",
    },
    {"image": "assets/house.png", "audio": "assets/rain.wav", "prompt": "a house", "labels": ""},
]


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
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
