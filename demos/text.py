"""Text tab: edit a photo from a target prompt (and, for inversion methods, a source prompt)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demos.common import Hub, Tab, add_examples, banner, build_tab, prompt_text
from methods.core.slots import IMAGE, INSTRUCTION, NEGATIVE_PROMPT, PROMPT, SOURCE_PROMPT
from methods.core.spec import Condition, EditInputs, InputError

CONDITION = Condition.TEXT


def build_inputs(hub: Hub, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    inputs.image = hub.source_image(values["image"])
    inputs.prompt = (values["prompt"] or "").strip()
    inputs.source_prompt = (values["source_prompt"] or "").strip()
    inputs.instruction = (values["instruction"] or "").strip()
    inputs.negative_prompt = (values["negative_prompt"] or "").strip()
    if not inputs.prompt and not inputs.instruction:
        raise InputError(
            "Please write a target prompt (what the edited photo should show) or an instruction (what to change)."
        )
    return inputs


def condition_cell(hub: Hub, inputs: EditInputs) -> tuple[Any, str]:
    source = f" · source: “{inputs.source_prompt}”" if inputs.source_prompt else ""
    return inputs.image, f"Source{source} · target {prompt_text(inputs)}"


TAB = Tab(CONDITION, (IMAGE, PROMPT, SOURCE_PROMPT, INSTRUCTION, NEGATIVE_PROMPT), build_inputs, condition_cell)

# Example rows by widget name: the photos first (assets/README.md), then the drawn house.
EXAMPLES: list[dict[str, Any]] = [
    {
        "image": "assets/chelsea.jpg",
        "prompt": "a photo of a tiger",
        "source_prompt": "a photo of a cat",
        "instruction": "turn the cat into a tiger",
        "negative_prompt": "",
    },
    {
        "image": "assets/coffee.jpg",
        "prompt": "a cup of green tea on a saucer, wooden table",
        "source_prompt": "a cup of coffee on a saucer, wooden table",
        "instruction": "turn the coffee into green tea",
        "negative_prompt": "",
    },
    {
        "image": "assets/house.png",
        "prompt": "a house in the snow, winter",
        "source_prompt": "a house on a meadow, summer",
        "instruction": "make it winter",
        "negative_prompt": "",
    },
]


def create_demo(hub: Hub) -> None:
    banner(hub)
    with gr.Row():
        image = gr.Image(type="pil", label="Source photo", sources=["upload", "clipboard"], elem_id="text-image")
        with gr.Column():
            prompt = gr.Textbox(value="", label="Target prompt", placeholder="a photo of a red house in the snow")
            source_prompt = gr.Textbox(
                value="", label="Source prompt (describes the photo; used by inversion-based methods)"
            )
            instruction = gr.Textbox(
                value="", label="Instruction (for instruction-following methods)", placeholder="make it winter"
            )
            negative_prompt = gr.Textbox(value="", label="Negative prompt (optional)")
    widgets = {
        "image": image,
        "prompt": prompt,
        "source_prompt": source_prompt,
        "instruction": instruction,
        "negative_prompt": negative_prompt,
    }
    add_examples(build_tab(hub, TAB, widgets)["inputs"], EXAMPLES)
