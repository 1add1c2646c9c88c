"""X/Y sweeps: one condition, up to two axes of values (method, seed, steps, guidance or a method's parameter), one
labelled grid of rows × columns, streamed cell by cell and saved as PNG + JSON.

Every distinct run goes through the comparison runner's ``run_method``, so a sweep cell is bit for bit the comparison
of that method alone with the same seed, inputs and parameters. A parameter axis changes its own method only: for
any other method all the values of that axis are the same run, made once and reused (its record says ``same_as``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from methods.core import runner
from methods.core.backbone import Backbone
from methods.core.images import _font
from methods.core.limits import number_text, shown, text_field
from methods.core.registry import get_method, list_methods
from methods.core.runner import Cell, Progress
from methods.core.slots import EditInputs
from methods.core.spec import Condition, FloatParam, InputError, IntParam, Param

AXIS_NONE = ""
MAX_VALUES = 8  # values per axis
MAX_CELLS = 36  # distinct runs per sweep
MAX_AXIS_CHARS = 1000
CELL_SIZE = 256
# The settings every method shares, with the bounds of the tabs' own widgets.
SEED = IntParam("seed", 0, 0, 2**31 - 1, label="Seed")
STEPS = IntParam("steps", 30, 1, 100, label="Steps")
GUIDANCE = FloatParam("guidance", 7.5, 1.0, 20.0, step=0.5, label="Guidance scale")
_SHARED = {"seed": SEED, "steps": STEPS, "guidance": GUIDANCE}
_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)"
_DASH_RANGE = re.compile(rf"^({_NUMBER})\s*-\s*({_NUMBER})\s*(?:\(\s*\+?\s*({_NUMBER})\s*\))?$")
_COLON_RANGE = re.compile(rf"^({_NUMBER})\s*:\s*({_NUMBER})\s*(?::\s*({_NUMBER}))?$")


def axis_choices(condition: Condition | str) -> list[tuple[str, str]]:
    """(label, key) of every axis a sweep of ``condition`` can vary: the shared settings, then each parameter."""
    choices = [("Method", "method"), ("Seed", "seed"), ("Steps", "steps"), ("Guidance scale", "guidance")]
    for method in list_methods(condition):
        choices += [(f"{method.label}: {param.title}", f"{method.name}.{param.name}") for param in method.params]
    return choices


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return number_text(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Axis:
    """What one axis varies (``key``: method, seed, steps, guidance or "method.param") and its values in order."""

    key: str
    values: tuple[Any, ...]

    @property
    def method(self) -> str:
        """The method a parameter axis belongs to ("" for the other axes)."""
        return self.key.partition(".")[0] if "." in self.key else ""

    @property
    def param(self) -> Param:
        if self.key in _SHARED:
            return _SHARED[self.key]
        name = self.key.partition(".")[2]
        return next(p for p in get_method(self.method).params if p.name == name)

    @property
    def title(self) -> str:
        if self.key == "method":
            return "Method"
        return f"{get_method(self.method).label}: {self.param.title}" if self.method else self.param.title

    def label(self, value: Any) -> str:
        if self.key == "method":
            return get_method(value).label
        return f"{self.key if self.key in _SHARED else self.param.title} {_value_text(value)}"


def _method_name(text: str, condition: Condition) -> str:
    wanted = str(text).strip().lower()
    for method in list_methods(condition):
        if wanted in {method.name.lower(), method.label.lower()}:
            return method.name
    for method in list_methods():
        if wanted in {method.name.lower(), method.label.lower()}:
            raise InputError(f"{method.label} belongs to the {method.condition.title} tab, not {condition.title}.")
    known = ", ".join(m.name for m in list_methods(condition))
    raise InputError(f"There is no method {shown(text)} in the {condition.title} tab; type some of: {known}.")


def _range(match: re.Match[str], item: str, what: str) -> list[float]:
    start, end = float(match.group(1)), float(match.group(2))
    step = float(match.group(3)) if match.group(3) is not None else 1.0
    if step <= 0:
        raise InputError(f"The step of the range {shown(item)} for {what} must be above 0, as in “1-9 (+2)”.")
    if end < start:
        raise InputError(f"The range {shown(item)} for {what} ends before it starts; type the smaller number first.")
    count = math.floor((end - start) / step + 1e-9) + 1
    if count > MAX_VALUES:
        raise InputError(f"The range {shown(item)} gives {count} values for {what}; at most {MAX_VALUES} fit.")
    return [round(start + index * step, 10) for index in range(count)]


def _raw_values(param: Param, text: str, what: str) -> list[Any]:
    """The typed values before checking: ranges expanded, choices matched case-insensitively."""
    items = [item.strip() for item in text.split("|" if param.kind == "text" else ",") if item.strip()]
    values: list[Any] = []
    for item in items:
        match = _DASH_RANGE.match(item) or _COLON_RANGE.match(item)
        if param.kind in {"int", "float"} and match:
            values += _range(match, item, what)
        elif param.kind == "choice":
            values.append(next((c for c in param.choices if c.lower() == item.lower()), item))
        else:
            values.append(item)
    return values


def _checked(param: Param, raw: Any, owner: str, title: str) -> Any:
    value = param.coerce(raw, owner)
    if param.kind == "int" and float(raw) != value:
        raise InputError(f"“{title}” takes whole numbers; type them as in “1, 2, 5” or “10-40 (+10)”.")
    return value


def _example(param: Param) -> str:
    if param.kind in {"int", "float"}:
        low, high = param.minimum or 0, param.maximum if param.maximum is not None else 10
        if param.kind == "int":
            return ", ".join(number_text(value) for value in sorted({low, min(low + 1, high), min(low + 2, high)}))
        return ", ".join(f"{value:g}" for value in sorted({low, param.default, high}))
    if param.kind == "bool":
        return "true, false"
    return ", ".join(param.choices[:2]) if param.kind == "choice" else "first | second"


def parse_axis(key: str, text: str | None, condition: Condition | str, chosen: Sequence[str]) -> Axis:
    """The axis ``key`` with the values typed in ``text`` (the method axis: empty = the ``chosen`` methods),
    each one checked by its parameter's own rules; anything else is an InputError saying what to type."""
    condition = Condition(condition)
    keys = {choice_key for _, choice_key in axis_choices(condition)}
    if not key:
        raise InputError("Choose what the axis varies: Method, Seed, Steps, Guidance scale or a method's parameter.")
    if key not in keys:
        raise InputError(f"There is no sweep axis {shown(key)} in the {condition.title} tab; choose one from the list.")
    if key == "method":
        title = "Method"
        text = text_field(text, "the Method values", MAX_AXIS_CHARS)
        names = [item for item in text.split(",") if item.strip()] or list(chosen)
        values = [_method_name(name, condition) for name in names]
    else:
        axis = Axis(key, ())
        title, param = axis.title, axis.param
        text = text_field(text, f"the values of {title}", MAX_AXIS_CHARS)
        owner = get_method(axis.method).label if axis.method else ""
        values = [_checked(param, raw, owner, title) for raw in _raw_values(param, text, f"“{title}”")]
    if not values:
        if key == "method":
            names = ", ".join(method.name for method in list_methods(condition)[:2])
            raise InputError(f"Check the methods to sweep, or type their names as the Method values, as in “{names}”.")
        raise InputError(f"Type the values of “{title}”, as in “{_example(Axis(key, ()).param)}”.")
    repeated = next((value for index, value in enumerate(values) if value in values[:index]), None)
    if repeated is not None:
        raise InputError(f"“{title}” lists {_value_text(repeated)} twice; type each value once.")
    if len(values) > MAX_VALUES:
        raise InputError(f"“{title}” has {len(values)} values; type at most {MAX_VALUES}.")
    return Axis(key, tuple(values))


@dataclass(frozen=True)
class Run:
    """One distinct run of a sweep: a method, its seed, its steps and guidance (None: the inputs') and the
    parameter values the axes give it."""

    method: str
    seed: int
    steps: int | None = None
    guidance: float | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def inputs(self, inputs: EditInputs) -> EditInputs:
        """The sweep's inputs with this run's steps and guidance."""
        steps = inputs.steps if self.steps is None else self.steps
        guidance = inputs.guidance if self.guidance is None else self.guidance
        return dataclasses.replace(inputs, steps=steps, guidance=guidance)


@dataclass(frozen=True)
class PlannedCell:
    row: int
    column: int
    run: Run
    same_as: tuple[int, int] | None = None  # the first cell with the same run (this one reuses it)


def _base_method(axes: Sequence[Axis], chosen: Sequence[str]) -> str:
    """The method every cell runs when no axis is "method" ("" when one is)."""
    method_axis = next((axis for axis in axes if axis.key == "method"), None)
    owners = {axis.method for axis in axes if axis.method}
    if method_axis is not None:
        for axis in axes:
            if axis.method and axis.method not in method_axis.values:
                label = get_method(axis.method).label
                raise InputError(f"“{axis.title}” changes {label} only; add {label} to the Method values.")
        return ""
    if len(owners) > 1:
        raise InputError("The axes are parameters of two methods; choose Method as one axis, or one method's.")
    if owners:
        return owners.pop()
    if len(chosen) != 1:
        raise InputError("Choose Method as one axis, or check one method.")
    return chosen[0]


def _run(method: str, seed: int, pairs: Sequence[tuple[Axis, Any]]) -> Run:
    method = next((value for axis, value in pairs if axis.key == "method"), method)
    shared = {axis.key: value for axis, value in pairs if axis.key in _SHARED}
    params = tuple(sorted((axis.param.name, value) for axis, value in pairs if axis.method == method))
    return Run(method, shared.get("seed", seed), shared.get("steps"), shared.get("guidance"), params)


def plan(x: Axis, y: Axis | None, methods: Sequence[str], seed: int) -> list[PlannedCell]:
    """The cells of the sweep, row-major; a cell whose run an earlier cell makes says so in ``same_as``."""
    if y is not None and y.key == x.key:
        raise InputError("The X and Y axes are the same; choose another Y axis, or (none).")
    axes = [x] if y is None else [x, y]
    method = _base_method(axes, methods)
    cells: list[PlannedCell] = []
    first: dict[Run, tuple[int, int]] = {}
    for row, y_value in enumerate(y.values if y is not None else (None,)):
        for column, x_value in enumerate(x.values):
            pairs = [(x, x_value)] + ([(y, y_value)] if y is not None else [])
            run = _run(method, seed, pairs)
            same = first.setdefault(run, (row, column))
            cells.append(PlannedCell(row, column, run, None if same == (row, column) else same))
    if len(first) > MAX_CELLS:
        raise InputError(
            f"This sweep needs {len(first)} runs; at most {MAX_CELLS} fit in one request. Type fewer values."
        )
    return cells


@dataclass
class Sweep:
    """A sweep so far: its labels, its cells (row-major), their records, the grid and its files."""

    x: Axis
    y: Axis | None
    row_labels: list[str]
    column_labels: list[str]
    cells: list[list[Cell | None]]  # rows × columns; None: not run yet
    records: list[dict[str, Any]]  # run_method's record of each finished cell, with its row and column
    grid: Image.Image
    files: list[Path] = field(default_factory=list)  # grid.png, sweep.json
    done: bool = True

    def caption(self, row: int, column: int) -> str:
        return " · ".join(label for label in (self.row_labels[row], self.column_labels[column]) if label)

    @property
    def gallery(self) -> list[tuple[Image.Image, str]]:
        return [
            (cell.image, self.caption(r, c)) for r, row in enumerate(self.cells) for c, cell in enumerate(row) if cell
        ]


def _wrapped(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float, lines: int) -> str:
    """``text`` broken into at most ``lines`` lines that each fit ``width`` pixels (a longer word stays whole)."""
    out: list[str] = []
    for word in text.split():
        if out and draw.textlength(f"{out[-1]} {word}", font=font) <= width:
            out[-1] = f"{out[-1]} {word}"
        else:
            out.append(word)
    return "\n".join(out[:lines])


def compose_sweep_grid(
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    cells: Sequence[Sequence[Image.Image | Cell | None]],
    title: str = "",
    footer: str = "",
) -> Image.Image:
    """One PNG: the title, column labels across the top, row labels down the left, each cell at up to 256 px
    (a light-grey placeholder for a cell not run yet) and the footer under it."""
    images = [[cell.image if isinstance(cell, Cell) else cell for cell in row] for row in cells]
    size = min(
        CELL_SIZE, max((max(image.size) for row in images for image in row if image is not None), default=CELL_SIZE)
    )
    font, small = _font(13), _font(11)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = min(180, 12 + max((measure.textlength(label, font=font) for label in row_labels if label), default=-12))
    width = int(left) + len(column_labels) * size
    headers = [_wrapped(measure, label, font, size - 8, 3) for label in column_labels]
    top, header = (24 if title else 0), 16 * max((h.count("\n") + 1 for h in headers), default=1) + 6
    footer_text = _wrapped(measure, footer, small, width - 8, 4) if footer else ""
    bottom = 16 * (footer_text.count("\n") + 1) + 8 if footer else 0
    grid = Image.new("RGB", (max(width, 1), top + header + len(images) * size + bottom), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 5), _wrapped(draw, title, font, width - 8, 1), fill=(0, 0, 0), font=font)
    for column, label in enumerate(headers):
        draw.multiline_text((int(left) + column * size + 4, top + 3), label, fill=(0, 0, 0), font=font, spacing=4)
    for row, (label, line) in enumerate(zip(row_labels, images, strict=True)):
        y = top + header + row * size
        draw.multiline_text((4, y + 4), _wrapped(draw, label, font, left - 8, 8), fill=(0, 0, 0), font=font, spacing=4)
        for column, image in enumerate(line):
            x = int(left) + column * size
            if image is None:
                draw.rectangle((x + 2, y + 2, x + size - 3, y + size - 3), fill=(228, 228, 228))
                continue
            thumb = ImageOps.contain(image.convert("RGB"), (size, size))
            grid.paste(thumb, (x + (size - thumb.width) // 2, y + (size - thumb.height) // 2))
    if footer:
        y = grid.height - bottom
        draw.line((0, y, grid.width, y), fill=(180, 180, 180))
        draw.multiline_text((4, y + 5), footer_text, fill=(40, 40, 40), font=small, spacing=3)
    return grid


def iter_sweep(
    backbone: Backbone,
    condition: Condition | str,
    inputs: EditInputs,
    x: Axis,
    y: Axis | None,
    methods: Sequence[str],
    seed: int,
    params: dict[str, dict[str, Any]] | None = None,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    out_dir: Path | None = None,
    time_budget: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Iterator[Sweep]:
    """Run the sweep's distinct runs in row-major order, yielding the sweep so far after each one (grid PNG and
    JSON rewritten each time); the last yield (``done``) is the whole sweep, or what ran before ``stop`` was set
    or ``time_budget`` (seconds) was spent. ``methods`` are the checked ones, ``params`` their parameters."""
    condition, params = Condition(condition), params or {}
    methods = [_method_name(name, condition) for name in methods]  # another tab's method is refused before any work
    planned = plan(x, y, methods, seed)
    report = progress or (lambda fraction, text: None)
    deadline = time.perf_counter() + time_budget if time_budget else None
    spent = f"this request used its {time_budget:g} s on the GPU. Type fewer values or steps." if time_budget else ""
    check = runner._stop_check(deadline, spent, stop)
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix=f"hub-sweep-{condition.value}-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [y.label(value) for value in y.values] if y is not None else [""]
    columns = [x.label(value) for value in x.values]
    cells: list[list[Cell | None]] = [[None] * len(columns) for _ in rows]
    records: list[dict[str, Any]] = []
    made: dict[Run, tuple[dict[str, Any], Cell]] = {}
    total = len({cell.run for cell in planned})
    axes = f"columns: {x.title}" + (f" · rows: {y.title}" if y is not None else "")
    title = f"{condition.title} sweep · {axes}"
    footer = f"{runner.run_footer(backbone, seed, inputs)} · {axes}"

    def snapshot(done: bool) -> Sweep:
        grid = compose_sweep_grid(rows, columns, cells, title, footer)
        grid_path, json_path = out_dir / "grid.png", out_dir / "sweep.json"
        grid.save(grid_path)
        summary = {
            "condition": condition.value,
            "x": {"key": x.key, "values": list(x.values)},
            "y": {"key": y.key, "values": list(y.values)} if y is not None else None,
            "seed": seed,
            "inputs": runner.inputs_summary(inputs),
            "records": records,
        }
        json_path.write_text(json.dumps({**summary, **(extra or {})}, indent=2, default=str))
        return Sweep(
            x, y, rows, columns, [list(row) for row in cells], list(records), grid, [grid_path, json_path], done
        )

    for cell in planned:
        fresh = cell.run not in made
        if fresh:
            if stop is not None and stop.is_set():
                break
            index, run = len(made), cell.run
            late = spent if deadline is not None and index > 0 and time.perf_counter() > deadline else ""

            def step_report(step: int, steps: int, text: str, _i: int = index) -> None:
                report((_i + step / max(steps, 1)) / total, text)

            report(index / total, f"{get_method(run.method).label}: starting")
            own = {**params.get(run.method, {}), **dict(run.params)}
            record, method_cells = runner.run_method(
                backbone,
                condition,
                run.method,
                run.inputs(inputs),
                run.seed,
                own,
                check=check,
                report=step_report,
                late=late,
            )
            made[run] = record, method_cells[0]  # its result, error or skipped cell (extras stay out of the grid)
        record, cells[cell.row][cell.column] = made[cell.run]
        same = {"same_as": list(cell.same_as)} if cell.same_as is not None else {}
        records.append({**record, "row": cell.row, "column": cell.column, **same})
        if fresh and len(made) < total and not (stop is not None and stop.is_set()):
            yield snapshot(done=False)
    report(1.0, "done")
    yield snapshot(done=True)
