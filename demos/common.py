"""What every tab shares: method checkboxes and parameter widgets generated from the method specs,
seed / steps / guidance, the Run button wired to the comparison runner, and the result grid.

A tab file declares its own widgets (the inputs every method of its condition uses), how their values become
``EditInputs``, and its condition cell; it never names a method. ``build_tab`` does the rest: the widgets of
any further input slot one of the condition's methods declares (``demos/slots.py``), method checkboxes and
parameters, the Run button and the grid. A new method shows up in its tab by being registered.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from demos.run import (
    FLAGS,
    GUIDANCE,
    MAX_SEED,
    SEED,
    STEPS,
    Form,
    StopSwitch,
    api_names,
    handler_seconds,
    name_parameters,
    parse_request,
    replay_values,
    split_call,
    time_budget,
)
from demos.zerogpu import gpu_task, on_zerogpu
from methods.core.backbone import Backbone
from methods.core.costs import CostBook, default_selection
from methods.core.images import fit_image, load_image
from methods.core.outputs import RunFolders
from methods.core.registry import list_methods
from methods.core.runner import Comparison, iter_comparison
from methods.core.settings import Settings
from methods.core.slots import Slot, ordered
from methods.core.spec import Condition, EditInputs, InputError, Method, Param

logger = logging.getLogger(__name__)

__all__ = ["FLAGS", "GUIDANCE", "MAX_SEED", "SEED", "STEPS"]  # the shared settings live in demos.run
SWEPT = "This run's pictures were deleted with its run folder (HUB_KEEP_RUNS / HUB_KEEP_SECONDS): run it again."
PREVIEW_SECONDS = 5.0  # what a model preview (a detector, a segmenter) is expected to take on a GPU
RECORD_COLUMNS = ["method", "status", "seconds", "seed", "steps", "guidance", "params", "message"]


@dataclass
class Hub:
    """What the tabs share: the resident backbone (built once by app.py) and the folders runs write into."""

    backbone: Backbone
    settings: Settings | None = None  # the app's settings (default: the backbone's)
    runs: RunFolders = field(init=False)
    costs: CostBook = field(init=False)  # seconds per method measured on this machine
    stops: StopSwitch = field(init=False, default_factory=StopSwitch)  # each session's Stop button

    def __post_init__(self) -> None:
        self.settings = self.settings or self.backbone.settings
        self.runs = RunFolders(self.settings.output_dir, self.settings.keep_runs, self.settings.keep_seconds)
        self.costs = CostBook(self.settings.output_dir / "timings.json")

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
    takes its turn in the GPU slot the Runs use, so no model is ever loaded or run beside a Run. On ZeroGPU it
    is a short GPU task of its own (the resident weights are only usable inside one)."""
    task = gpu_task(fn, lambda *args, **kwargs: PREVIEW_SECONDS)
    return trigger(task, inputs, outputs, api_visibility="private", concurrency_id="gpu", concurrency_limit=1)


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


def _metrics_rows(hub: Hub, comparison: Comparison, inputs: EditInputs) -> Any:
    """The per-cell metrics table (evaluation.metrics), rounded for display."""
    from evaluation.metrics import metrics_table

    return metrics_table(hub.backbone, comparison, inputs).round(4)


def seconds_text(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def cost_choices(hub: Hub, condition: Condition, steps: int) -> list[tuple[str, str]]:
    """The method checkboxes, each with its expected seconds on this backbone and device."""
    return [
        (f"{label} · {hub.costs.label(hub.backbone, name, steps)}", name) for label, name in method_choices(condition)
    ]


def run_label(hub: Hub, chosen: list[str] | None, steps: Any) -> str:
    if not chosen:
        return "Run comparison"
    names = [name for name in chosen if isinstance(name, str)]
    seconds = hub.costs.total(hub.backbone, names, int(steps or 1))
    return f"Run comparison (~{seconds_text(seconds)} for {len(names)} method{'s' * (len(names) != 1)})"


def build_tab(
    hub: Hub, tab: Tab, widgets: dict[str, gr.components.Component], default_steps: int | None = None
) -> dict[str, Any]:
    """Add the further slots' widgets, the method controls, Run / Stop, the streamed grid, the compare slider,
    the history strip and the X/Y sweep under a tab's widgets."""
    from demos import grid
    from demos.sweep import sweep_controls, wire_sweep

    condition = tab.condition
    widgets = {**widgets, **slot_widgets(hub, tab, widgets)}
    methods = list_methods(condition)
    default_steps = default_steps or (4 if hub.backbone.profile.is_tiny else 30)
    with gr.Row():
        method_box = gr.CheckboxGroup(
            cost_choices(hub, condition, default_steps),
            value=default_selection(hub.backbone, methods, default_steps),
            label="Methods to compare",
            info=(
                "Expected seconds on this machine, from its last runs or a declared estimate"
                + ("; the slow ones start unticked on a CPU." if hub.backbone.device.type == "cpu" else ".")
            ),
            elem_id=f"{condition.value}-methods",
        )
    if licence_warning(condition):
        gr.Markdown(licence_warning(condition), elem_id=f"{condition.value}-licences")
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=SEED.minimum, maximum=SEED.maximum, label=SEED.title)
        randomize = gr.Checkbox(value=False, label=FLAGS["randomize_seed"].title)
        steps = gr.Slider(
            STEPS.minimum,
            STEPS.maximum,
            value=default_steps,
            step=1,
            label=STEPS.title,
            elem_id=f"{condition.value}-steps",
        )
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
    with gr.Row():
        run_button = gr.Button(
            run_label(hub, method_box.value, default_steps),
            variant="primary",
            elem_id=f"{condition.value}-run",
            scale=4,
        )
        stop_button = gr.Button("Stop", variant="stop", elem_id=f"{condition.value}-stop", scale=1)
    extras = gr.Checkbox(
        value=True,
        label="Show each method's intermediate images (masks, maps, attention) after its result",
        elem_id=f"{condition.value}-extras",
    )
    gallery = gr.Gallery(
        label="Comparison: the condition, then one cell per method as each finishes (click a cell to open it)",
        columns=3,
        height="auto",
        object_fit="contain",
        format="png",
        elem_id=f"{condition.value}-gallery",
        elem_classes=["hub-grid"],
    )
    with gr.Accordion("Compare two cells (before / after slider)", open=True):
        with gr.Row():
            left = gr.Dropdown([grid.SOURCE], value=grid.SOURCE, label="Left", elem_id=f"{condition.value}-left")
            right = gr.Dropdown([], label="Right (or click a cell in the grid)", elem_id=f"{condition.value}-right")
        slider = gr.ImageSlider(type="pil", label="Drag to compare", elem_id=f"{condition.value}-slider")
    # Shown only while scoring is on: an empty table under the grid reads as a broken one.
    metrics = gr.Dataframe(label="Metrics (source → each method's output)", visible=score.value, wrap=True)
    on_draw(score.change, lambda on: gr.Dataframe(visible=on), score, metrics)
    with gr.Accordion("Per-method record (reproduce any cell)", open=False):
        table = gr.Dataframe(headers=RECORD_COLUMNS, label="Records", wrap=True)
        files = gr.File(label="Grid PNG and records JSON", file_count="multiple")
    with gr.Accordion("History of this session (click a run to restore its inputs and grid)", open=True):
        history_strip = gr.Gallery(
            label="Past runs, newest first",
            columns=8,
            height=150,
            allow_preview=False,
            elem_id=f"{condition.value}-history",
        )
        replay = gr.File(
            label="Restore a run from its records JSON (seed, methods, parameters, prompts)",
            file_types=[".json"],
            elem_id=f"{condition.value}-replay",
        )
        replay_note = gr.Markdown("")
    with gr.Accordion("X/Y sweep: methods × parameters on the same photo", open=False):
        sweep = sweep_controls(condition)
        sweep["cells"] = gr.Gallery(
            label="Sweep cells, row by row (full size)",
            columns=4,
            height="auto",
            format="png",
            elem_id=f"{condition.value}-sweep-cells",
        )
    with gr.Accordion("About these methods", open=False):
        gr.Markdown(methods_help(condition))

    last = gr.State(None)  # the grid.Shown on screen (paths into its run folder)
    history = gr.State([])  # grid.Run entries of this session
    param_keys = [(m, p) for m, p, _ in param_components]
    run_inputs = [
        *widgets.values(),
        method_box,
        seed,
        randomize,
        steps,
        cfg,
        score,
        *(c for _, _, c in param_components),
        extras,
    ]
    names = api_names(list(widgets), param_keys)
    form = Form(hub, tab, widgets, param_keys, default_steps, names)

    def process(*values: Any) -> Iterator[tuple[Any, ...]]:
        values, request, report = split_call(values, len(names))
        stop = hub.stops.arm(request, condition.value)  # before the checks: a preview model may run in them
        try:
            req = parse_request(form, values)
            seen = 0
            for comparison in iter_comparison(
                hub.backbone,
                condition,
                req.chosen,
                req.inputs,
                req.seed,
                params=req.params,
                condition_cell=req.cell,
                progress=lambda f, text: report(f, desc=text),
                out_dir=hub.runs.new(condition.value),
                time_budget=time_budget(hub, run_seconds(*values)),
                stop=stop,
                extra=grid.replay_block(condition.value, names, req.values),
            ):
                for record in comparison.records[seen:]:
                    hub.costs.observe(hub.backbone, record)
                seen = len(comparison.records)
                scores = gr.skip()
                if comparison.done:
                    scores = _metrics_rows(hub, comparison, req.inputs) if req.score else None
                yield (
                    grid.gallery_items(comparison, req.extras),
                    grid.records_rows(comparison),
                    [str(path) for path in comparison.files],
                    req.seed,
                    scores,
                    grid.Shown.of(comparison, req.extras),
                    req.values,
                )
        finally:
            hub.stops.release(request, condition.value, stop)

    name_parameters(process, names)
    run_seconds = handler_seconds(hub, names, condition)
    pending = gr.State(None)  # the values of the run on screen, for the history
    run_event = run_button.click(
        gpu_task(process, run_seconds),
        inputs=run_inputs,
        outputs=[gallery, table, files, seed, metrics, last, pending],
        api_name=condition.value,
        concurrency_limit=1,
        concurrency_id="gpu",
    )

    def after_run(shown: Any, values: Any, past: list[Any], steps_value: Any, chosen: Any) -> tuple[Any, ...]:
        if shown is None or values is None:
            return (gr.skip(),) * 8
        seed_used = shown.records[0]["seed"] if shown.records else ""
        title = f"{time.strftime('%H:%M:%S')} · seed {seed_used} · {len(shown.records)} methods"
        past = grid.remember(past, grid.Run(grid.keep_values(values, shown.grid.parent / "inputs"), shown, title))
        choices = grid.slider_names(shown)
        right_value = choices[1] if len(choices) > 1 else None
        return (
            past,
            grid.history_items(past),
            gr.Dropdown(choices=choices, value=grid.SOURCE if grid.SOURCE in choices else None),
            gr.Dropdown(choices=choices, value=right_value),
            grid.slider_pair(shown, grid.SOURCE, right_value),
            gr.CheckboxGroup(choices=cost_choices(hub, condition, int(steps_value or default_steps))),
            run_label(hub, chosen, steps_value),
            None,  # the pending values now live in the history, pictures saved in the run folder
        )

    run_event.success(
        after_run,
        [last, pending, history, steps, method_box],
        [history, history_strip, left, right, slider, method_box, run_button, pending],
        api_visibility="private",
        queue=False,
    )

    def stop_run(request: gr.Request) -> None:
        hub.stops.stop(request, condition.value)

    # The runner stops at the method's next step and keeps what finished. On ZeroGPU the Run executes in a worker
    # process this switch cannot reach, so there Stop also cancels the event (the worker ends at its next yield).
    stop_event = on_draw(stop_button.click, stop_run, None, None)
    # The estimate follows the choice of methods and steps.
    for trigger in (method_box.change, steps.change):
        on_draw(trigger, lambda chosen, n: run_label(hub, chosen, n), [method_box, steps], run_button)

    def toggle_extras(shown: Any, on: bool) -> tuple[Any, Any]:
        if shown is None:
            return gr.skip(), gr.skip()
        if not shown.exists():
            gr.Warning(SWEPT)
        return grid.shown_items(shown, on), dataclasses.replace(shown, extras=bool(on))

    on_draw(extras.change, toggle_extras, [last, extras], [gallery, last])

    # The compare slider: any two pictures of the grid on screen; clicking a cell puts it on the right.
    def show_pair(comparison: Any, a: Any, b: Any) -> Any:
        return grid.slider_pair(comparison, a, b)

    for trigger in (left.change, right.change):
        on_draw(trigger, show_pair, [last, left, right], slider)

    def pick(shown: Any, event: gr.SelectData) -> Any:
        name = grid.selected_name(shown, event.index, shown.extras if shown is not None else True)
        return gr.skip() if name is None else name

    gallery.select(pick, last, right, api_visibility="private", queue=False)

    # History: a click restores the run's inputs (as its widgets held them), its grid and the compare slider.
    def restore(past: list[Any], event: gr.SelectData) -> tuple[Any, ...]:
        run = grid.history_run(past, event.index)
        if run is None or not run.shown.exists():
            if run is not None:
                gr.Warning(SWEPT)
            return (gr.skip(),) * (len(run_inputs) + 7)
        items = grid.shown_items(run.shown, run.shown.extras)
        choices = grid.slider_names(run.shown)
        right_value = choices[1] if len(choices) > 1 else None
        return (
            *run.values,
            items,
            grid.records_rows(run.shown),
            [str(p) for p in run.shown.files if p.exists()],
            run.shown,
            gr.Dropdown(choices=choices, value=grid.SOURCE if grid.SOURCE in choices else None),
            gr.Dropdown(choices=choices, value=right_value),
            grid.slider_pair(run.shown, grid.SOURCE, right_value),
        )

    history_strip.select(
        restore,
        history,
        [*run_inputs, gallery, table, files, last, left, right, slider],
        api_visibility="private",
        queue=False,
    )

    components = dict(zip(names, run_inputs, strict=True))

    def restore_json(path: Any) -> tuple[Any, ...]:
        restored, media = grid.read_replay(path, condition.value, names)
        restored, refused = replay_values(restored, components, condition.value)
        updates = [restored[name] if name in restored else gr.skip() for name in names]
        note = f"Restored {len(restored)} settings from the records JSON."
        if refused:
            note += f" Not restored (not valid here): {', '.join(refused[:12])}."
        if media:
            note += f" Pictures and sounds are not in the JSON: load the same {', '.join(media)} before running."
        return (*updates, note)

    replay.upload(restore_json, replay, [*run_inputs, replay_note], api_visibility="private", queue=False)
    sweep_event = wire_sweep(form, run_inputs, sweep)
    if on_zerogpu():
        stop_event.then(None, None, None, cancels=[run_event, sweep_event], queue=False)
    return {"gallery": gallery, "run": run_button, "methods": method_box, "seed": seed, "inputs": widgets}


def add_examples(widgets: dict[str, gr.components.Component], rows: list[dict[str, Any]]) -> gr.Examples:
    """Example rows given by widget name; a name the tab does not have (a slot no method declares) is left out."""
    names = [n for n in dict.fromkeys(k for row in rows for k in row) if n in widgets]
    return gr.Examples([[row.get(n) for n in names] for row in rows], inputs=[widgets[n] for n in names])
