"""The X/Y sweep's widgets, its on-screen table, and its handler (``wire_sweep``, called by ``build_tab``).

The table is plain HTML: column labels in a header row, a row label at the start of each row, one thumbnail per
finished cell (its caption as the ``title``) and a placeholder for each cell still to run.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterator
from typing import Any

import gradio as gr
from PIL import Image, ImageOps

from demos import grid
from demos.run import Form, handler_seconds, name_parameters, parse_request, split_call, time_budget
from demos.zerogpu import gpu_task
from methods.core.registry import list_methods
from methods.core.spec import Condition
from methods.core.sweep import AXIS_NONE, MAX_CELLS, MAX_VALUES, Sweep, axis_choices, iter_sweep, parse_axis

THUMBNAIL = 256  # px, the longest side of a cell in the table
PENDING = "…"


def sweep_controls(condition: Condition | str) -> dict[str, gr.components.Component]:
    """The sweep's widgets, built in the caller's Blocks context: the two axes and their values, the Run sweep
    button, the table and the PNG + JSON files."""
    condition = Condition(condition)
    prefix = f"{condition.value}-sweep"
    choices = axis_choices(condition)
    hint = (
        "Numbers: “1, 2, 5” or a range “1-9 (+2)” / “1:9:2”; choices: “a, b”; true / false; methods: names or labels "
        f"(empty: the checked methods); text: “one | two”. At most {MAX_VALUES} values an axis, {MAX_CELLS} runs."
    )
    with gr.Row():
        x = gr.Dropdown(choices, value="method", label="X axis (columns)", elem_id=f"{prefix}-x")
        x_values = gr.Textbox(
            "",
            label="X values",
            placeholder="1, 2, 3 or 10-40 (+10); empty for Method: the checked methods",
            info=hint,
            elem_id=f"{prefix}-x-values",
        )
    with gr.Row():
        y = gr.Dropdown([("(none)", AXIS_NONE), *choices], value="seed", label="Y axis (rows)", elem_id=f"{prefix}-y")
        y_values = gr.Textbox("0, 1", label="Y values", placeholder="0, 1 or 0-6 (+2)", elem_id=f"{prefix}-y-values")
    run = gr.Button("Run sweep", variant="primary", elem_id=f"{prefix}-run")
    table = gr.HTML("", elem_id=f"{prefix}-grid")
    files = gr.File(label="Sweep grid PNG and JSON", file_count="multiple", elem_id=f"{prefix}-files")
    return {"x": x, "x_values": x_values, "y": y, "y_values": y_values, "run": run, "html": table, "files": files}


def thumbnail_uri(image: Image.Image, size: int = THUMBNAIL) -> str:
    """A JPEG data URI of the picture at most ``size`` px on its longest side."""
    buffer = io.BytesIO()
    ImageOps.contain(image.convert("RGB"), (size, size)).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell_html(sweep: Sweep, row: int, column: int) -> str:
    cell = sweep.cells[row][column]
    if cell is None:
        return f'<td class="hub-sweep-pending">{PENDING}</td>'
    caption = html.escape(sweep.caption(row, column), quote=True)
    return f'<td><img src="{thumbnail_uri(cell.image)}" title="{caption}" alt="{caption}"></td>'


def sweep_html(sweep: Sweep) -> str:
    """The sweep as an HTML table: a header row of column labels, each row led by its label."""
    rows_title = f"{sweep.y.title} ↓ · " if sweep.y is not None else ""
    corner = html.escape(f"{rows_title}{sweep.x.title} →")
    header = "".join(f'<th scope="col">{html.escape(label)}</th>' for label in sweep.column_labels)
    rows = []
    for row, label in enumerate(sweep.row_labels):
        cells = "".join(_cell_html(sweep, row, column) for column in range(len(sweep.column_labels)))
        rows.append(f'<tr><th scope="row">{html.escape(label)}</th>{cells}</tr>')
    state = "done" if sweep.done else "running"
    return (
        f'<table class="hub-sweep" data-state="{state}">'
        f'<thead><tr><td class="hub-sweep-corner">{corner}</td>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def wire_sweep(form: Form, run_inputs: list[gr.components.Component], sweep: dict[str, Any]) -> Any:
    """The Sweep button: the Run's values plus two axes -> a labelled rows × columns grid, streamed cell by
    cell, with its PNG and JSON; also the ``<condition>_sweep`` API endpoint."""
    hub, condition, names = form.hub, form.tab.condition, form.names
    sweep_names = [*names, "x_axis", "x_values", "y_axis", "y_values"]

    def process_sweep(*values: Any) -> Iterator[Any]:
        values, request, report = split_call(values, len(sweep_names))
        x_key, x_text, y_key, y_text = values[len(names) :]
        axis_methods = [m.name for m in list_methods(condition)]  # a Method axis may name an unticked method
        stop = hub.stops.arm(request, condition.value)
        try:
            req = parse_request(form, values[: len(names)], axis_methods)
            x = parse_axis(str(x_key or ""), str(x_text or ""), condition, req.chosen)
            y = parse_axis(str(y_key), str(y_text or ""), condition, req.chosen) if y_key else None
        except BaseException:
            hub.stops.release(request, condition.value, stop)
            raise
        block = grid.replay_block(condition.value, names, req.values)
        block["replay"]["sweep"] = {"x_axis": x_key, "x_values": x_text, "y_axis": y_key, "y_values": y_text}
        seen = 0
        try:
            for result in iter_sweep(
                hub.backbone,
                condition,
                req.inputs,
                x,
                y,
                req.chosen,
                req.seed,
                req.params,
                progress=lambda f, text: report(f, desc=text),
                stop=stop,
                out_dir=hub.runs.new(f"{condition.value}sweep"),
                time_budget=time_budget(hub, sweep_seconds(*values)),
                extra=block,
            ):
                for record in result.records[seen:]:
                    if "same_as" not in record:
                        hub.costs.observe(hub.backbone, record)
                seen = len(result.records)
                yield sweep_html(result), [str(p) for p in result.files], result.gallery
        finally:
            hub.stops.release(request, condition.value, stop)

    name_parameters(process_sweep, sweep_names)
    sweep_seconds = handler_seconds(hub, sweep_names, condition, sweep=True)
    return sweep["run"].click(
        gpu_task(process_sweep, sweep_seconds),
        inputs=[*run_inputs, sweep["x"], sweep["x_values"], sweep["y"], sweep["y_values"]],
        outputs=[sweep["html"], sweep["files"], sweep["cells"]],
        api_name=f"{condition.value}_sweep",
        concurrency_limit=1,
        concurrency_id="gpu",
    )
