"""A tab's Run and Sweep requests: the widget values checked and turned into the runner's arguments, the
handlers' API signature, and the per-session Stop switch.

Every handler a tab wires takes the same values in the same order (the tab's widgets, the shared settings, each
method's parameters, the extras toggle), so a history entry or a records JSON restores a run by giving those
values back to the same widgets.
"""

from __future__ import annotations

import inspect
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from demos.zerogpu import MARGIN_SECONDS, on_zerogpu, requested_seconds
from methods.core.limits import text_field
from methods.core.registry import get_method
from methods.core.spec import BoolParam, Condition, EditInputs, FloatParam, InputError, IntParam

MAX_SEED = 2**31 - 1
# The settings every method shares: their widgets and the checks of a client's values come from these.
SEED = IntParam("seed", 0, 0, MAX_SEED, label="Seed (shared by all methods)")
STEPS = IntParam("steps", 30, 1, 100, label="Steps")
GUIDANCE = FloatParam("guidance_scale", 7.5, 1.0, 20.0, step=0.5, label="Guidance scale")
FLAGS = {
    "randomize_seed": BoolParam("randomize_seed", False, label="Randomize seed"),
    "show_metrics": BoolParam("show_metrics", False, label="Score the cells"),
    "show_extras": BoolParam("show_extras", True, label="Show each method's intermediate images"),
}
SCORE_SECONDS = 30.0  # loading CLIP ViT-L/14, DINO and LPIPS and scoring, when "Score the cells" is on
SHARED = ["methods", "seed", "randomize_seed", "steps", "guidance_scale", "show_metrics"]


@dataclass
class Request:
    """One Run's checked values."""

    values: list[Any]  # as the widgets sent them, in the handler's input order (the seed as used)
    named: dict[str, Any]
    chosen: list[str]
    seed: int
    score: bool
    extras: bool
    params: dict[str, dict[str, Any]]
    inputs: EditInputs
    cell: tuple[Any, str] = field(default=(None, ""))


def api_names(widget_names: list[str], param_keys: list[tuple[str, str]]) -> list[str]:
    """The handlers' parameter names for gradio_client: the widgets, the shared settings, method__param, and
    the extras toggle last (so a client written before it existed still lines up)."""
    return [*widget_names, *SHARED, *(f"{m}__{p}" for m, p in param_keys), "show_extras"]


def name_parameters(fn: Callable[..., Any], names: list[str]) -> None:
    """Give ``fn(*values)`` a signature with those names (each defaulting to None, so a widget added to a tab
    later never breaks an older client call), then the visitor's request and Gradio's progress tracker."""
    parameters = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in names]
    parameters.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
    parameters.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    fn.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    fn.__annotations__ = {"request": gr.Request}


def split_call(values: tuple[Any, ...], count: int) -> tuple[tuple[Any, ...], Any, Callable[..., Any]]:
    """A handler named by ``name_parameters`` is called with its ``count`` values, then the visitor's request
    and Gradio's progress tracker (positionally): split them."""
    request = values[count] if len(values) > count else None
    progress = values[count + 1] if len(values) > count + 1 else None
    return values[:count], request, progress or (lambda *args, **kwargs: None)


@dataclass(frozen=True)
class Form:
    """What a tab's handlers read their values against: the hub, the tab, its widgets (by API name), the method
    parameters' (method, param) keys, the default steps, and every value's API name in the handlers' order."""

    hub: Any
    tab: Any
    widgets: dict[str, gr.components.Component]
    param_keys: list[tuple[str, str]]
    default_steps: int
    names: list[str]


def parse_request(form: Form, values: tuple[Any, ...], also: list[str] | None = None) -> Request:
    """Check every value before any work starts (an ``InputError`` names the field) and build the inputs. The
    parameters of the ticked methods are read, and of ``also`` (a sweep's Method axis may name others)."""
    from demos.common import read_inputs

    hub, tab, widgets, param_keys = form.hub, form.tab, form.widgets, form.param_keys
    values = list(values)
    count = len(widgets)
    named = dict(zip(widgets, values[:count], strict=True))
    for name, value in named.items():
        if isinstance(widgets[name], gr.Textbox):
            text_field(value, f"“{widgets[name].label}”")
    chosen, seed, randomize, steps, guidance, score = values[count : count + 6]
    param_values = values[count + 6 : count + 6 + len(param_keys)]
    extras = values[count + 6 + len(param_keys)] if len(values) > count + 6 + len(param_keys) else None
    if not chosen:
        raise InputError("Select at least one method to compare.")
    if not isinstance(chosen, list | tuple) or not all(isinstance(name, str) for name in chosen):
        raise InputError("“Methods to compare” must be a list of method names.")
    if FLAGS["randomize_seed"].coerce(randomize):
        seed = random.randint(0, MAX_SEED)
    seed = SEED.coerce(0 if seed is None else seed)
    steps = STEPS.coerce(steps if steps is not None else form.default_steps)
    params: dict[str, dict[str, Any]] = {}
    for (method_name, param_name), value in zip(param_keys, param_values, strict=True):
        if method_name in chosen or method_name in (also or ()):
            params.setdefault(method_name, {})[param_name] = value
    params = {name: get_method(name).resolve_params(given) for name, given in params.items()}
    inputs = read_inputs(hub, tab, named, EditInputs(steps=steps, guidance=GUIDANCE.coerce(guidance)))
    values[count + 1 : count + 3] = [seed, False]  # a replay reproduces the seed this run used
    return Request(
        values=values,
        named=named,
        chosen=list(chosen),
        seed=seed,
        score=FLAGS["show_metrics"].coerce(score),
        extras=FLAGS["show_extras"].coerce(extras),
        params=params,
        inputs=inputs,
        cell=tab.condition_cell(hub, inputs),
    )


RESTORABLE = (gr.Textbox, gr.Number, gr.Slider, gr.Checkbox, gr.Dropdown, gr.Radio, gr.CheckboxGroup)


def replay_values(
    restored: dict[str, Any], components: dict[str, gr.components.Component], condition: str
) -> tuple[dict[str, Any], list[str]]:
    """The values of a records JSON that may go back into their widgets: only plain widgets (text, numbers,
    choices; never a picture or sound, whose value could name a server file), each checked as a Run checks it.
    Returns them and the names refused."""
    from methods.core.registry import list_methods

    known = {m.name for m in list_methods(condition)}
    kept, refused = {}, []
    for name, value in restored.items():
        component = components.get(name)
        try:
            if not isinstance(component, RESTORABLE):
                raise InputError("not a plain setting")
            if name == "methods":
                value = [m for m in value if m in known] if isinstance(value, list) else None
                if not value:
                    raise InputError("no method of this tab")
            elif name in {"seed", "steps", "guidance_scale"}:
                value = {"seed": SEED, "steps": STEPS, "guidance_scale": GUIDANCE}[name].coerce(value)
            elif name in FLAGS:
                value = FLAGS[name].coerce(value)
            elif "__" in name:
                method, param = name.split("__", 1)
                spec = next(p for p in get_method(method).params if p.name == param)
                value = spec.coerce(value, get_method(method).label)
            elif isinstance(component, gr.Textbox):
                value = text_field(value, f"“{component.label}”")
            elif isinstance(component, gr.Dropdown | gr.Radio | gr.CheckboxGroup):
                allowed = [choice[1] if isinstance(choice, tuple) else choice for choice in component.choices or []]
                if value not in allowed:
                    raise InputError("not one of the choices")
            elif not isinstance(value, str | int | float | bool):
                raise InputError("not a plain value")
            kept[name] = value
        except (InputError, StopIteration, KeyError, TypeError, ValueError):
            refused.append(name)
    return kept, refused


def handler_seconds(hub: Any, names: list[str], condition: Condition, sweep: bool = False) -> Callable[..., float]:
    """The expected seconds of a Run (or sweep) handler call whose values are named ``names``: the chosen
    methods' estimates with the visitor's parameters, every distinct run of a sweep, the metric models when
    scoring is on. ZeroGPU asks for this much GPU time; the runner's budget follows it there."""
    where = {name: index for index, name in enumerate(names)}

    def value(values: tuple[Any, ...], name: str) -> Any:
        index = where.get(name)
        return values[index] if index is not None and index < len(values) else None

    def estimate(*values: Any, **_: Any) -> float:
        chosen = value(values, "methods")
        chosen = [n for n in chosen if isinstance(n, str)] if isinstance(chosen, list | tuple) else []
        steps = value(values, "steps")
        steps = int(steps) if isinstance(steps, int | float) and 1 <= steps <= STEPS.maximum else STEPS.default
        params: dict[str, dict[str, Any]] = {}
        for name in names:
            if "__" in name:
                method, param = name.split("__", 1)
                params.setdefault(method, {})[param] = value(values, name)
        scoring = SCORE_SECONDS if value(values, "show_metrics") else 0.0
        if not sweep:
            return hub.costs.total(hub.backbone, chosen, steps, params) + scoring
        return sweep_seconds(hub, condition, values, where, chosen, steps, params) + scoring

    return estimate


def sweep_seconds(
    hub: Any,
    condition: Condition,
    values: tuple[Any, ...],
    where: dict[str, int],
    chosen: list[str],
    steps: int,
    params: dict[str, dict[str, Any]],
) -> float:
    """Every distinct run of the sweep the values describe (0 when the axes are refused: the handler says why)."""
    from methods.core.sweep import parse_axis, plan

    def text(name: str) -> str:
        index = where[name]
        return str(values[index] or "") if index < len(values) else ""

    try:
        x = parse_axis(text("x_axis"), text("x_values"), condition, chosen)
        y = parse_axis(text("y_axis"), text("y_values"), condition, chosen) if text("y_axis") else None
        cells = plan(x, y, chosen, 0)
    except InputError:
        return 0.0
    runs = [cell.run for cell in cells if cell.same_as is None]
    return sum(
        hub.costs.estimate(
            hub.backbone, run.method, run.steps or steps, {**params.get(run.method, {}), **dict(run.params)}
        )[0]
        for run in runs
    )


def time_budget(hub: Any, expected: float) -> float:
    """The runner's budget: the settings' one, and on ZeroGPU no more than the GPU time the call asked for
    (less the time a fresh worker spends moving the weights), so the runner stops before ZeroGPU would."""
    if not on_zerogpu():
        return hub.settings.max_request_seconds
    return min(hub.settings.max_request_seconds, requested_seconds(expected) - MARGIN_SECONDS)


class StopSwitch:
    """One Stop event per visitor session and tab: a Run arms it, the tab's Stop button sets it, the runner checks
    it. (A Stop pressed while the Run still waits in the queue finds nothing armed and does nothing.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    @staticmethod
    def key(request: gr.Request | None, tab: str) -> str:
        return f"{getattr(request, 'session_hash', None) or 'anonymous'}/{tab}"

    def arm(self, request: gr.Request | None, tab: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events[self.key(request, tab)] = event
        return event

    def stop(self, request: gr.Request | None, tab: str) -> bool:
        """Set the tab's Stop for this session; False when nothing of it is running."""
        with self._lock:
            event = self._events.get(self.key(request, tab))
        if event is None:
            return False
        event.set()
        return True

    def release(self, request: gr.Request | None, tab: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(self.key(request, tab)) is event:
                del self._events[self.key(request, tab)]
