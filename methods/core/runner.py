"""The comparison runner: one condition, several methods, the same inputs and seed, one grid.

Used by the UI and by scripts. Every method runs inside ``backbone.borrowed()`` with the same seed; a
method that raises becomes an error cell with its message while the others still run. With a time budget, a
method still running when it is spent stops at its next step and the methods after it are skipped, so one
request never holds the GPU longer than the budget (plus one step).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from methods.core.backbone import Backbone
from methods.core.images import compose_grid, text_card
from methods.core.limits import scrub
from methods.core.registry import get_method
from methods.core.slots import EditInputs
from methods.core.spec import Condition, InputError, RunContext

logger = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
MAX_MESSAGE_CHARS = 300


class BudgetSpent(Exception):  # noqa: N818 - a stop signal, not a failure
    """Raised from a method's step report once the request's time budget is used up."""


@dataclass
class Cell:
    image: Image.Image
    caption: str  # everything: label, seconds, parameters, what the method reports
    kind: str  # condition | result | extra | error | skipped
    method: str = ""  # the method's registry name ("" for the condition cell)
    header: str = ""  # short: the label and seconds, drawn above the cell
    detail: str = ""  # the parameters, drawn under the header
    path: Path | None = None  # the picture as saved in the run folder (``iter_comparison`` writes it)


@dataclass
class Comparison:
    cells: list[Cell]
    records: list[dict[str, Any]]
    grid: Image.Image
    files: list[Path] = field(default_factory=list)
    done: bool = True  # False for the partial comparisons ``iter_comparison`` yields before the last method
    source: Image.Image | None = None  # the photo the methods were given (for the compare slider)
    source_path: Path | None = None  # that photo as saved in the run folder

    @property
    def gallery(self) -> list[tuple[Image.Image, str]]:
        return [(cell.image, cell.caption) for cell in self.cells]

    def result(self, method: str) -> Image.Image:
        """The output image of one method (raises if it failed or was skipped)."""
        for record, cell in zip(self.records, self._result_cells(), strict=True):
            if record["method"] == method:
                if record["status"] != "ok":
                    raise RuntimeError(f"{method} did not produce an image: {record['message']}")
                return cell.image
        raise KeyError(method)

    def _result_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.kind in {"result", "error", "skipped"}]


def _format_params(params: dict[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


def _format_info(info: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in info.items())


def _summary(value: Any) -> Any:
    if isinstance(value, Image.Image):
        return {"size": list(value.size)}
    if isinstance(value, list) and all(dataclasses.is_dataclass(item) for item in value):  # e.g. region pairs
        return [dataclasses.asdict(item) for item in value]
    return value if isinstance(value, str | int | float) else str(value)


def inputs_summary(inputs: EditInputs) -> dict[str, object]:
    """The non-image inputs of a run (and a summary of its further slots), for the downloadable record."""
    return {
        "image_size": list(inputs.image.size) if inputs.image is not None else None,
        "prompt": inputs.prompt,
        "source_prompt": inputs.source_prompt,
        "negative_prompt": inputs.negative_prompt,
        "has_mask": inputs.mask is not None,
        "boxes": [dict(phrase=b.phrase, box=b.as_list()) for b in inputs.boxes],
        "drags": [dict(handle=list(d.handle), target=list(d.target)) for d in inputs.drags],
        "audio_seconds": inputs.audio.seconds if inputs.audio is not None else None,
        "source_class": inputs.source_class,
        "target_class": inputs.target_class,
        "steps": inputs.steps,
        "guidance": inputs.guidance,
        "slots": {name: _summary(value) for name, value in inputs.slot_values.items()},
        "captions": list(inputs.captions),
    }


def _stop_check(deadline: float | None, spent: str, stop: threading.Event | None) -> Callable[[int, int], None]:
    """The check every step report makes: the visitor's Stop, then the request's time budget."""

    def check(step: int, total: int) -> None:
        if stop is not None and stop.is_set():
            raise BudgetSpent(f"Stopped by the visitor at step {step}/{total}.")
        if deadline is not None and time.perf_counter() > deadline:
            raise BudgetSpent(f"Stopped at step {step}/{total}: {spent}")

    return check


def run_method(
    backbone: Backbone,
    condition: Condition,
    name: str,
    inputs: EditInputs,
    seed: int,
    params: dict[str, Any] | None = None,
    *,
    check: Callable[[int, int], None] | None = None,
    report: Callable[[int, int, str], None] | None = None,
    size: tuple[int, int] | None = None,
    late: str = "",
) -> tuple[dict[str, Any], list[Cell]]:
    """One method on the inputs with the seed: its record and its cells (result, error or skipped, then extras).

    ``check(step, total)`` may raise ``BudgetSpent`` to stop the method at a step; ``late`` (a sentence) marks a
    method that must not start at all (the budget was spent before it)."""
    method_cls = get_method(name)
    if method_cls.condition != condition:
        raise InputError(f"{method_cls.label} belongs to the {method_cls.condition.value} tab, not {condition.value}.")
    size = size or (inputs.image.size if inputs.image is not None else (backbone.size, backbone.size))
    record: dict[str, Any] = {
        "method": name,
        "label": method_cls.label,
        "seed": seed,
        "steps": inputs.steps,
        "guidance": inputs.guidance,
        "backbone": backbone.profile.name,
        "backbone_location": public_location(backbone),
    }
    label = method_cls.label
    started = time.perf_counter()
    cells: list[Cell] = []
    try:
        resolved = method_cls.resolve_params(params)
        record["params"] = resolved
        missing = method_cls.missing_inputs(inputs)
        if missing:
            raise InputError(f"{label} needs {' and '.join(missing)}.")
        if late:
            raise InputError(f"Not run: {late}")

        def step_report(step: int, total: int) -> None:
            if check is not None:
                check(step, total)
            if report is not None:
                report(step, total, f"{label}: step {step}/{total}")

        torch.manual_seed(seed)  # for pipelines that draw noise without the generator
        generator = torch.Generator(device=backbone.device).manual_seed(seed)
        ctx = RunContext(backbone=backbone, seed=seed, generator=generator, report=step_report)
        with backbone.borrowed():
            output = method_cls().run(ctx, inputs, resolved)
        seconds = time.perf_counter() - started
        record.update(status="ok", seconds=round(seconds, 3), info=output.info, message="")
        detail = _format_params(resolved)
        caption = f"{label} · {seconds:.1f}s · {detail}"
        if output.info:
            caption += f" · {_format_info(output.info)}"
        cells.append(Cell(output.image, caption, "result", name, f"{label} · {seconds:.1f} s", detail))
        cells.extend(
            Cell(image, f"{label}: {text}", "extra", name, f"{label}: {text}") for image, text in output.extras
        )
    except InputError as error:
        record.update(status="skipped", seconds=round(time.perf_counter() - started, 3), message=str(error))
        cells.append(
            Cell(
                text_card(f"Skipped: {error}", size),
                f"{label} · skipped: {error}",
                "skipped",
                name,
                f"{label} · skipped",
            )
        )
    except BudgetSpent as error:
        record.update(status="stopped", seconds=round(time.perf_counter() - started, 3), message=str(error))
        cells.append(Cell(text_card(str(error), size), f"{label} · {error}", "error", name, f"{label} · stopped"))
    except Exception as error:  # noqa: BLE001 - one method's failure must not kill the tab
        logger.error("%s failed:\n%s", name, traceback.format_exc())
        message = scrub(f"{type(error).__name__}: {error}")[:MAX_MESSAGE_CHARS]
        record.update(status="error", seconds=round(time.perf_counter() - started, 3), message=message)
        cells.append(
            Cell(
                text_card(f"{label} failed.\n{message}", size),
                f"{label} · failed: {message}",
                "error",
                name,
                f"{label} · failed",
            )
        )
    return record, cells


def public_location(backbone: Backbone) -> str:
    """The backbone's hub id, or "a local folder" for one on disk: records and grids never show a server path."""
    location = backbone.profile.location
    return "a local folder" if Path(location).is_absolute() else location


def run_footer(backbone: Backbone, seed: int, inputs: EditInputs) -> str:
    """The line under a downloaded grid: what every cell shared."""
    location = public_location(backbone)
    where = "" if location == "a local folder" else f" ({location})"
    return (
        f"seed {seed} · {inputs.steps} steps · guidance {inputs.guidance:g} · backbone {backbone.profile.name}"
        f"{where} on {backbone.device.type}"
    )


def iter_comparison(
    backbone: Backbone,
    condition: Condition | str,
    methods: Sequence[str],
    inputs: EditInputs,
    seed: int,
    params: dict[str, dict[str, Any]] | None = None,
    condition_cell: tuple[Image.Image, str] | None = None,
    progress: Progress | None = None,
    out_dir: Path | None = None,
    time_budget: float | None = None,
    stop: threading.Event | None = None,
    extra: dict[str, Any] | None = None,
) -> Iterator[Comparison]:
    """Run each method on the same inputs and seed, yielding the comparison so far after each one (its grid PNG
    and records JSON rewritten each time, so the files always cover what ran). The last yield is the whole run.

    ``time_budget`` (seconds) bounds the whole request (see the module docstring); ``stop`` (set by the visitor's
    Stop button) stops the running method at its next step and runs no further method. ``extra`` goes into the
    records JSON as it is (the UI's replay block)."""
    condition = Condition(condition)
    params = params or {}
    for name in methods:  # a method of another tab is the caller's mistake: refuse before any work
        if get_method(name).condition != condition:
            method_cls = get_method(name)
            raise InputError(
                f"{method_cls.label} belongs to the {method_cls.condition.value} tab, not {condition.value}."
            )
    report = progress or (lambda fraction, text: None)
    deadline = time.perf_counter() + time_budget if time_budget else None
    spent = (
        f"this request used its {time_budget:g} s on the GPU. Run fewer methods or steps, or a smaller photo."
        if time_budget
        else ""
    )
    check = _stop_check(deadline, spent, stop)
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix=f"hub-{condition.value}-"))
    pictures = out_dir / "cells"
    pictures.mkdir(parents=True, exist_ok=True)
    source_path = None
    if inputs.image is not None:
        source_path = pictures / "source.png"
        inputs.image.save(source_path)
    cells: list[Cell] = []
    if condition_cell is not None:
        cells.append(Cell(condition_cell[0], condition_cell[1], "condition", "", "Condition", condition_cell[1]))
    records: list[dict[str, Any]] = []
    footer = run_footer(backbone, seed, inputs)

    def snapshot(done: bool) -> Comparison:
        for index, cell in enumerate(cells):  # each cell's picture once, so a history can keep paths, not pictures
            if cell.path is None:
                cell.path = pictures / f"{index:02d}-{cell.kind}-{cell.method or 'condition'}.png"
                cell.image.save(cell.path)
        grid = compose_grid([(c.image, c.header or c.caption, c.detail) for c in cells], footer=footer)
        grid_path, record_path = out_dir / "grid.png", out_dir / "records.json"
        grid.save(grid_path)
        summary = {"condition": condition.value, "inputs": inputs_summary(inputs), "records": records}
        record_path.write_text(json.dumps({**summary, **(extra or {})}, indent=2, default=str))
        files = [grid_path, record_path]
        return Comparison(
            list(cells), list(records), grid, files, done=done, source=inputs.image, source_path=source_path
        )

    yield snapshot(done=False)  # the condition cell at once: the previous run's grid leaves the screen
    for index, name in enumerate(methods):
        if stop is not None and stop.is_set():
            break
        late = spent if deadline is not None and index > 0 and time.perf_counter() > deadline else ""
        label = get_method(name).label

        def step_report(step: int, total: int, text: str, _i: int = index) -> None:
            report((_i + step / max(total, 1)) / len(methods), text)

        report(index / len(methods), f"{label}: starting")
        record, method_cells = run_method(
            backbone, condition, name, inputs, seed, params.get(name), check=check, report=step_report, late=late
        )
        records.append(record)
        cells.extend(method_cells)
        if index < len(methods) - 1 and not (stop is not None and stop.is_set()):
            yield snapshot(done=False)
    report(1.0, "done")
    yield snapshot(done=True)


def run_comparison(*args: Any, **kwargs: Any) -> Comparison:
    """``iter_comparison`` run to the end: the whole comparison (same arguments)."""
    (comparison,) = collections.deque(iter_comparison(*args, **kwargs), maxlen=1)
    return comparison
