"""What every tab shares: method checkboxes and parameter widgets generated from the method specs,
seed / steps / guidance, the Run button wired to the comparison runner, and the result grid.

A tab file declares its own widgets (the inputs every method of its condition uses), how their values become
``EditInputs``, and its condition cell; it never names a method. ``build_tab`` does the rest: the widgets of
any further input slot one of the condition's methods declares (``demos/slots.py``), method checkboxes and
parameters, the Run button and the grid. A new method shows up in its tab by being registered.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from methods.core.backbone import Backbone
from methods.core.images import fit_image, load_image
from methods.core.limits import text_field
from methods.core.outputs import RunFolders
from methods.core.registry import get_method, list_methods
from methods.core.runner import Comparison, run_comparison
from methods.core.settings import Settings
from methods.core.slots import Slot, ordered
from methods.core.spec import BoolParam, Condition, EditInputs, FloatParam, InputError, IntParam, Method, Param

logger = logging.getLogger(__name__)

MAX_SEED = 2**31 - 1
RECORD_COLUMNS = ["method", "status", "seconds", "seed", "steps", "guidance", "params", "message"]
# The settings every method shares: their widgets and the checks of a client's values come from these.
SEED = IntParam("seed", 0, 0, MAX_SEED, label="Seed (shared by all methods)")
STEPS = IntParam("steps", 30, 1, 100, label="Steps")
GUIDANCE = FloatParam("guidance_scale", 7.5, 1.0, 20.0, step=0.5, label="Guidance scale")
FLAGS = {
    "randomize_seed": BoolParam("randomize_seed", False, label="Randomize seed"),
    "show_metrics": BoolParam("show_metrics", False, label="Score the cells"),
}


@dataclass
class Hub:
    """What the tabs share: the resident backbone (built once by app.py) and the folders runs write into."""

    backbone: Backbone
    settings: Settings | None = None  # the app's settings (default: the backbone's)
    runs: RunFolders = field(init=False)

    def __post_init__(self) -> None:
        self.settings = self.settings or self.backbone.settings
        self.runs = RunFolders(self.settings.output_dir, self.settings.keep_runs, self.settings.keep_seconds)

    def source_image(self, value: Any, what: str = "the source image", required: bool = True) -> Any:
        """Upload -> RGB at the backbone's working size (longest side), sides multiple of its stride."""
        if value is None:
            if required:
                raise InputError(f"Please upload {what}.")
            return None
        return fit_image(load_image(value, what), self.backbone.size, self.backbone.size_multiple)

    def working_size(self, image: Any = None) -> tuple[int, int]:
        """The size the methods work at: the source photo's, else a square of the backbone's working size."""
        return image.size if image is not None else (self.backbone.size, self.backbone.size)


# A tab's builder: the condition widgets' values (by name) -> the methods' inputs.
Builder = Callable[[Hub, dict[str, Any], EditInputs], EditInputs]
# A tab's condition cell: what the methods were given, drawn first in the grid (picture, caption).
CellMaker = Callable[[Hub, EditInputs], tuple[Any, str]]


@dataclass(frozen=True)
class Tab:
    """What a tab module declares: its condition, the slots its own widgets provide, how their values become
    ``EditInputs``, and how its condition cell is drawn."""

    condition: Condition
    provides: tuple[Slot, ...]
    build_inputs: Builder
    condition_cell: CellMaker
    guidance: bool = True  # whether the methods of this condition take a guidance scale
    addons: tuple[str, ...] = ()  # add-ons the tab's own previews run (annotators), beyond its methods' add-ons


def prompt_text(inputs: EditInputs) -> str:
    return f"prompt: “{inputs.prompt}”" if inputs.prompt else "no prompt"


def map_cell(condition: Condition) -> CellMaker:
    """The condition cell of a map tab (pose, sketch, segmentation): the map, how it was made, the prompt."""

    def cell(hub: Hub, inputs: EditInputs) -> tuple[Any, str]:
        details = "".join(f" · {caption}" for caption in inputs.captions)
        return inputs.control_image, f"{condition.title} given to the methods{details} · {prompt_text(inputs)}"

    return cell


def further_slots(tab: Tab) -> list[tuple[Slot, list[type[Method]]]]:
    """The slots the condition's methods declare that the tab's own widgets do not provide, with their users."""
    users: dict[Slot, list[type[Method]]] = {}
    for method in list_methods(tab.condition):
        for slot in (*method.requires, *method.optional):
            if slot not in tab.provides and method not in users.get(slot, []):
                users.setdefault(slot, []).append(method)
    return [(slot, users[slot]) for slot in ordered(users)]


def read_inputs(hub: Hub, tab: Tab, values: dict[str, Any], inputs: EditInputs) -> EditInputs:
    """All the methods' inputs from the widget values (by API name): the tab's own, then every further slot."""
    from demos.slots import widget_for

    inputs = tab.build_inputs(hub, values, inputs)
    for slot, _ in further_slots(tab):
        inputs[slot] = widget_for(slot).read(hub, values, inputs)
    return inputs


def slot_widgets(hub: Hub, tab: Tab, widgets: dict[str, gr.components.Component]) -> dict[str, Any]:
    """The widgets of the further slots, each slot under an accordion that names the methods using it."""
    from demos.slots import widget_for

    added: dict[str, gr.components.Component] = {}
    for slot, users in further_slots(tab):
        with gr.Accordion(f"{slot.title} — used by {', '.join(m.label for m in users)}", open=False):
            components = widget_for(slot).build(hub, tab.condition, widgets)
        clash = set(components) & (set(widgets) | set(added))
        if clash:
            raise ValueError(f"slot {slot.name!r} widget names {sorted(clash)} are already used in the tab")
        added.update(components)
    return added


def on_draw(trigger: Callable[..., Any], fn: Callable[..., Any], inputs: Any, outputs: Any) -> Any:
    """Wire a preview that only draws (no model): answered at once, outside the queue, so a full queue of Runs
    never refuses it."""
    return trigger(fn, inputs, outputs, api_visibility="private", queue=False)


def on_model(trigger: Callable[..., Any], fn: Callable[..., Any], inputs: Any, outputs: Any) -> Any:
    """Wire a preview that loads or runs a model (OpenPose, Segment Anything, the segmenter, line detectors): it
    takes its turn in the GPU slot the Runs use, so no model is ever loaded or run beside a Run."""
    return trigger(fn, inputs, outputs, api_visibility="private", concurrency_id="gpu", concurrency_limit=1)


def banner(hub: Hub) -> None:
    gr.Markdown(hub.backbone.banner(), elem_classes=["hub-banner"])


def method_choices(condition: Condition) -> list[tuple[str, str]]:
    return [
        (m.describe() + (" · non-commercial weights" if non_commercial(m) else ""), m.name)
        for m in list_methods(condition)
    ]


def checkpoint_licences(method: type[Method]) -> list[tuple[str, str]]:
    """(add-on, licence) of each checkpoint the method borrows, as the add-on table declares them."""
    from methods.core.addons import get_addon_spec

    return [(name, get_addon_spec(name).licence or "see its model card") for name in method.addons]


def non_commercial(method: type[Method]) -> bool:
    from methods.core.addons import get_addon_spec

    return any(get_addon_spec(name).non_commercial for name in method.addons)


def licence_warning(condition: Condition) -> str:
    """A line naming the methods whose weights forbid commercial use (empty when there are none)."""
    flagged = [m for m in list_methods(condition) if non_commercial(m)]
    if not flagged:
        return ""
    names = "; ".join(
        f"{m.label}: "
        + ", ".join(f"{a} ({lic})" for a, lic in checkpoint_licences(m) if "non-commercial" in lic.lower())
        for m in flagged
    )
    return f"⚠ Non-commercial weights — research and personal use only. {names}."


def param_widget(method_name: str, param: Param) -> gr.components.Component:
    label = param.title
    common = {"label": label, "info": param.help or None, "elem_id": f"{method_name}__{param.name}"}
    if param.kind == "float":
        return gr.Slider(param.minimum, param.maximum, value=param.default, step=param.step or 0.01, **common)
    if param.kind == "int":
        return gr.Slider(param.minimum, param.maximum, value=param.default, step=param.step or 1, **common)
    if param.kind == "bool":
        return gr.Checkbox(value=param.default, **common)
    if param.kind == "choice":
        return gr.Dropdown(list(param.choices), value=param.default, **common)
    return gr.Textbox(value=param.default, **common)


def methods_help(condition: Condition) -> str:
    lines = ["| method | paper | year | learning strategy | add-ons (licence) |", "|---|---|---|---|---|"]
    for m in list_methods(condition):
        addons = ", ".join(f"{a} ({lic})" for a, lic in checkpoint_licences(m)) or "—"
        lines.append(
            f"| **{m.label}** — {m.summary} | [{m.paper.title}]({m.paper.url}) | {m.paper.year} | "
            f"{m.strategy.value} | {addons} |"
        )
    lines.append(
        "\nEvery method runs on the shared Stable Diffusion 1.5 backbone (CreativeML OpenRAIL-M: open, with use-based "
        "restrictions); DiT-based ones use only its VAE."
    )
    return "\n".join(lines)


def _records_table(comparison: Comparison) -> list[list[Any]]:
    rows = []
    for r in comparison.records:
        rows.append(
            [
                r["method"],
                r["status"],
                r.get("seconds"),
                r["seed"],
                r["steps"],
                r["guidance"],
                str(r.get("params", {})),
                r.get("message", ""),
            ]
        )
    return rows


def _metrics_rows(hub: Hub, comparison: Comparison, inputs: EditInputs) -> Any:
    """The per-cell metrics table (evaluation.metrics), rounded for display."""
    from evaluation.metrics import metrics_table

    return metrics_table(hub.backbone, comparison, inputs).round(4)


def build_tab(
    hub: Hub, tab: Tab, widgets: dict[str, gr.components.Component], default_steps: int | None = None
) -> dict[str, Any]:
    """Add the further slots' widgets, the method controls, Run button and result grid under a tab's widgets."""
    condition = tab.condition
    widgets = {**widgets, **slot_widgets(hub, tab, widgets)}
    methods = list_methods(condition)
    default_steps = default_steps or (4 if hub.backbone.profile.is_tiny else 30)
    with gr.Row():
        method_box = gr.CheckboxGroup(
            method_choices(condition),
            value=[m.name for m in methods],
            label="Methods to compare",
            elem_id=f"{condition.value}-methods",
        )
    if licence_warning(condition):
        gr.Markdown(licence_warning(condition), elem_id=f"{condition.value}-licences")
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=SEED.minimum, maximum=SEED.maximum, label=SEED.title)
        randomize = gr.Checkbox(value=False, label=FLAGS["randomize_seed"].title)
        steps = gr.Slider(STEPS.minimum, STEPS.maximum, value=default_steps, step=1, label=STEPS.title)
        cfg = gr.Slider(
            GUIDANCE.minimum,
            GUIDANCE.maximum,
            value=GUIDANCE.default,
            step=GUIDANCE.step,
            label=GUIDANCE.title,
            visible=tab.guidance,
        )
        score = gr.Checkbox(
            value=hub.backbone.device.type == "cuda",
            label="Score the cells (CLIP, LPIPS, SSIM, PSNR, DINO structure)",
            info="Loads the metric models at first use; off by default without a GPU.",
        )
    param_components: list[tuple[str, str, gr.components.Component]] = []
    for method in methods:
        if not method.params:
            continue
        with gr.Accordion(f"Parameters: {method.label}", open=False):
            for param in method.params:
                param_components.append((method.name, param.name, param_widget(method.name, param)))
    run_button = gr.Button("Run comparison", variant="primary", elem_id=f"{condition.value}-run")
    gallery = gr.Gallery(
        label="Comparison (condition first)",
        columns=4,
        height="auto",
        object_fit="contain",
        format="png",
        elem_id=f"{condition.value}-gallery",
    )
    # Shown only while scoring is on: an empty table under the grid reads as a broken one.
    metrics = gr.Dataframe(label="Metrics (source → each method's output)", visible=score.value, wrap=True)
    on_draw(score.change, lambda on: gr.Dataframe(visible=on), score, metrics)
    with gr.Accordion("Per-method record (reproduce any cell)", open=False):
        table = gr.Dataframe(headers=RECORD_COLUMNS, label="Records", wrap=True)
        files = gr.File(label="Grid PNG and records JSON", file_count="multiple")
    with gr.Accordion("About these methods", open=False):
        gr.Markdown(methods_help(condition))

    widget_names = list(widgets)
    param_keys = [(m, p) for m, p, _ in param_components]

    def process(*values: Any, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        # Every value is checked here before any work starts; HubBlocks turns the InputError into the message.
        named = dict(zip(widget_names, values[: len(widget_names)], strict=True))
        for name, value in named.items():
            if isinstance(widgets[name], gr.Textbox):
                text_field(value, f"“{widgets[name].label}”")
        chosen, seed_value, randomize_value, steps_value, guidance_value, score_value = values[
            len(widget_names) : len(widget_names) + 6
        ]
        param_values = values[len(widget_names) + 6 :]
        if not chosen:
            raise gr.Error("Select at least one method to compare.")
        if FLAGS["randomize_seed"].coerce(randomize_value):
            seed_value = random.randint(0, MAX_SEED)
        seed_value = SEED.coerce(0 if seed_value is None else seed_value)
        steps_value = STEPS.coerce(steps_value if steps_value is not None else default_steps)
        guidance_value = GUIDANCE.coerce(guidance_value)
        params: dict[str, dict[str, Any]] = {}
        for (method_name, param_name), value in zip(param_keys, param_values, strict=True):
            if method_name in chosen:
                params.setdefault(method_name, {})[param_name] = value
        params = {name: get_method(name).resolve_params(values) for name, values in params.items()}
        inputs = read_inputs(hub, tab, named, EditInputs(steps=steps_value, guidance=guidance_value))
        cell = tab.condition_cell(hub, inputs)
        comparison = run_comparison(
            hub.backbone,
            condition,
            list(chosen),
            inputs,
            seed_value,
            params=params,
            condition_cell=cell,
            progress=lambda f, text: progress(f, desc=text),
            out_dir=hub.runs.new(condition.value),
            time_budget=hub.settings.max_request_seconds,
        )
        scores = _metrics_rows(hub, comparison, inputs) if FLAGS["show_metrics"].coerce(score_value) else None
        files = [str(p) for p in comparison.files]
        return comparison.gallery, _records_table(comparison), files, seed_value, scores

    # Meaningful API parameter names for gradio_client: the widget names, then method__param. Every parameter
    # defaults to None in the signature, so gradio_client treats a widget without an initial value (an optional
    # mask, a second map) as optional too: a widget added to a tab later never breaks an older client call, and
    # a missing required input is the tab's own sentence ("Please upload...") rather than a client TypeError.
    names = [*widget_names, "methods", "seed", "randomize_seed", "steps", "guidance_scale", "show_metrics"]
    names += [f"{m}__{p}" for m, p in param_keys]
    parameters = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in names]
    parameters.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=gr.Progress()))
    process.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]

    run_button.click(
        process,
        inputs=[
            *widgets.values(),
            method_box,
            seed,
            randomize,
            steps,
            cfg,
            score,
            *(c for _, _, c in param_components),
        ],
        outputs=[gallery, table, files, seed, metrics],
        api_name=condition.value,
        concurrency_limit=1,
        concurrency_id="gpu",
    )
    return {"gallery": gallery, "run": run_button, "methods": method_box, "seed": seed, "inputs": widgets}


def add_examples(widgets: dict[str, gr.components.Component], rows: list[dict[str, Any]]) -> gr.Examples:
    """Example rows given by widget name; a name the tab does not have (a slot no method declares) is left out."""
    names = [n for n in dict.fromkeys(k for row in rows for k in row) if n in widgets]
    return gr.Examples([[row.get(n) for n in names] for row in rows], inputs=[widgets[n] for n in names])
