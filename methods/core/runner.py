"""The comparison runner: one condition, several methods, the same inputs and seed, one grid.

Used by the UI and by scripts. Every method runs inside ``backbone.borrowed()`` with the same seed; a
method that raises becomes an error cell with its message while the others still run. With a time budget, a
method still running when it is spent stops at its next step and the methods after it are skipped, so one
request never holds the GPU longer than the budget (plus one step).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
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
    caption: str
    kind: str  # condition | result | extra | error | skipped


@dataclass
class Comparison:
    cells: list[Cell]
    records: list[dict[str, Any]]
    grid: Image.Image
    files: list[Path] = field(default_factory=list)

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


def run_comparison(
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
) -> Comparison:
    """Run each method on the same inputs and seed; return cells, records, grid PNG and record JSON.

    ``time_budget`` (seconds) bounds the whole request: see the module docstring."""
    condition = Condition(condition)
    params = params or {}
    report = progress or (lambda fraction, text: None)
    deadline = time.perf_counter() + time_budget if time_budget else None
    spent = (
        f"this request used its {time_budget:g} s on the GPU. Run fewer methods or steps, or a smaller photo."
        if time_budget
        else ""
    )
    size = inputs.image.size if inputs.image is not None else (backbone.size, backbone.size)
    cells: list[Cell] = []
    if condition_cell is not None:
        cells.append(Cell(condition_cell[0], condition_cell[1], "condition"))
    records: list[dict[str, Any]] = []
    for index, name in enumerate(methods):
        method_cls = get_method(name)
        if method_cls.condition != condition:
            raise InputError(
                f"{method_cls.label} belongs to the {method_cls.condition.value} tab, not {condition.value}."
            )
        record: dict[str, Any] = {
            "method": name,
            "label": method_cls.label,
            "seed": seed,
            "steps": inputs.steps,
            "guidance": inputs.guidance,
            "backbone": backbone.profile.name,
            "backbone_location": backbone.profile.location,
        }
        started = time.perf_counter()
        try:
            resolved = method_cls.resolve_params(params.get(name))
            record["params"] = resolved
            missing = method_cls.missing_inputs(inputs)
            if missing:
                raise InputError(f"{method_cls.label} needs {' and '.join(missing)}.")
            if deadline is not None and index > 0 and started > deadline:  # the first method always starts
                raise InputError(f"Not run: {spent}")

            def step_report(step: int, total: int, _i: int = index, _label: str = method_cls.label) -> None:
                if deadline is not None and time.perf_counter() > deadline:
                    raise BudgetSpent(f"Stopped at step {step}/{total}: {spent}")
                report((_i + step / max(total, 1)) / len(methods), f"{_label}: step {step}/{total}")

            report(index / len(methods), f"{method_cls.label}: starting")
            torch.manual_seed(seed)  # for pipelines that draw noise without the generator
            generator = torch.Generator(device=backbone.device).manual_seed(seed)
            ctx = RunContext(backbone=backbone, seed=seed, generator=generator, report=step_report)
            with backbone.borrowed():
                output = method_cls().run(ctx, inputs, resolved)
            seconds = time.perf_counter() - started
            record.update(status="ok", seconds=round(seconds, 3), info=output.info, message="")
            caption = f"{method_cls.label} · {seconds:.1f}s · {_format_params(resolved)}"
            if output.info:
                caption += f" · {_format_info(output.info)}"
            cells.append(Cell(output.image, caption, "result"))
            cells.extend(Cell(image, f"{method_cls.label}: {text}", "extra") for image, text in output.extras)
        except InputError as error:
            record.update(status="skipped", seconds=round(time.perf_counter() - started, 3), message=str(error))
            cells.append(
                Cell(text_card(f"Skipped: {error}", size), f"{method_cls.label} · skipped: {error}", "skipped")
            )
        except BudgetSpent as error:
            record.update(status="stopped", seconds=round(time.perf_counter() - started, 3), message=str(error))
            cells.append(Cell(text_card(str(error), size), f"{method_cls.label} · {error}", "error"))
        except Exception as error:  # noqa: BLE001 - one method's failure must not kill the tab
            logger.error("%s failed:\n%s", name, traceback.format_exc())
            message = scrub(f"{type(error).__name__}: {error}")[:MAX_MESSAGE_CHARS]
            record.update(status="error", seconds=round(time.perf_counter() - started, 3), message=message)
            cells.append(
                Cell(
                    text_card(f"{method_cls.label} failed.\n{message}", size),
                    f"{method_cls.label} · failed: {message}",
                    "error",
                )
            )
        records.append(record)
    report(1.0, "done")
    grid = compose_grid([(c.image, c.caption) for c in cells])
    comparison = Comparison(cells=cells, records=records, grid=grid)
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix=f"hub-{condition.value}-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    grid_path, record_path = out_dir / "grid.png", out_dir / "records.json"
    grid.save(grid_path)
    record_path.write_text(
        json.dumps(
            {"condition": condition.value, "inputs": inputs_summary(inputs), "records": records}, indent=2, default=str
        )
    )
    comparison.files = [grid_path, record_path]
    return comparison
