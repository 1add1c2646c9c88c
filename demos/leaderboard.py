"""Leaderboard tab: the method x task table of an EditEval results folder, with each item's grid a click away.

The folder is what ``python -m evaluation evaluate --out DIR`` wrote (``table.csv``, ``scores.csv``,
``run.json``, ``items/<id>/grid.png``). The tab only reads files, and only under the results root
(``--results-root``, default ``outputs/``): a folder typed outside it is refused with one sentence that does not
say whether it exists.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from demos.common import Hub, on_draw
from evaluation.editeval import metric_label
from evaluation.metrics import METRICS

logger = logging.getLogger(__name__)

TITLE = "Leaderboard"
DEFAULT_FOLDER = Path("editeval")  # inside the results root


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def results_folder(value: str | None, root: Path) -> Path:
    """The results folder typed in the tab (relative to the working directory or to ``root``), if it lies
    inside ``root`` and holds a results table."""
    text = (value or "").strip()
    root = Path(root).resolve()
    typed = Path(text) if text else DEFAULT_FOLDER
    inside = [c.resolve() for c in (typed, root / typed) if c.resolve().is_relative_to(root)]
    if not inside:
        raise gr.Error(f"Results are read only from folders inside the results root `{root.name}/`; type one there.")
    folder = next((c for c in inside if (c / "table.csv").is_file()), None)
    if folder is None:
        shown = inside[0].relative_to(root.parent)
        raise gr.Error(
            f"No results in {shown}: run `python -m evaluation evaluate --dataset DIR --out {shown}` first, "
            "or type the folder it wrote."
        )
    return folder


def metrics_in(folder: Path) -> list[str]:
    return list(dict.fromkeys(row["metric"] for row in _read_csv(folder / "table.csv")))


def leaderboard(folder: Path, metric: str) -> pd.DataFrame:
    """Rows = methods; columns: mean over all items, its std and n, then the mean of each task."""
    rows = [r for r in _read_csv(folder / "table.csv") if r["metric"] == metric]
    tasks = [t for t in dict.fromkeys(r["task"] for r in rows) if t != "all"]
    table = []
    for method in dict.fromkeys(r["method"] for r in rows):
        cells = {r["task"]: r for r in rows if r["method"] == method}
        overall = cells.get("all")
        entry: dict[str, Any] = {
            "method": method,
            "all": round(float(overall["mean"]), 4) if overall else None,
            "± std": round(float(overall["std"]), 4) if overall else None,
            "n": int(overall["n"]) if overall else 0,
        }
        entry.update({task: round(float(cells[task]["mean"]), 4) if task in cells else None for task in tasks})
        table.append(entry)
    frame = pd.DataFrame(table, columns=["method", "all", "± std", "n", *tasks])
    higher = METRICS[metric].higher_is_better if metric in METRICS else metric != "seconds"
    return frame.sort_values("all", ascending=not higher, na_position="last", ignore_index=True)


def items_table(folder: Path, metric: str) -> pd.DataFrame:
    """Rows = items; one column per method with its value of ``metric`` (blank if skipped or failed)."""
    rows = _read_csv(folder / "scores.csv")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    items: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = items.setdefault(row["item"], {"item": row["item"], "task": row["task"]})
        value = row.get(metric, "")
        entry[row["method"]] = round(float(value), 4) if value not in {"", None} else None
    return pd.DataFrame(list(items.values()), columns=["item", "task", *methods])


def run_summary(folder: Path) -> str:
    path = folder / "run.json"
    if not path.is_file():
        return ""
    info = json.loads(path.read_text())
    backbone, settings = info.get("backbone", {}), info.get("settings", {})
    skipped = info.get("skipped_items", [])
    text = (
        f"**{info.get('dataset_name', '')}** · backbone `{backbone.get('profile')}` ({backbone.get('location')}, "
        f"{backbone.get('device')}) · {settings.get('steps')} steps · guidance {settings.get('guidance')} · "
        f"{len(info.get('items_scored', []))} items scored · judge {settings.get('judge', {}).get('kind', 'none')}"
    )
    if skipped:
        text += f" · {len(skipped)} skipped (no image): " + ", ".join(s["item"] for s in skipped)
    if backbone.get("profile") == "tiny":
        text += "\n\n⚠️ Tiny backbone: random weights, so these numbers only show that the pipeline runs."
    return text


def item_grid(folder: Path, item: str) -> Image.Image | None:
    path = folder / "items" / Path(item).name / "grid.png"  # .name: never leave the results folder
    return Image.open(path).convert("RGB") if path.is_file() else None


def tables(root: Path, folder_value: str, metric: str | None) -> tuple[list[tuple[str, str]], str, str, Any, Any]:
    """(metric choices, chosen metric, run summary, method x task table, item table) of a results folder."""
    folder = results_folder(folder_value, root)
    metrics = metrics_in(folder)
    metric = metric if metric in metrics else metrics[0]
    choices = [(metric_label(m), m) for m in metrics]
    return choices, metric, run_summary(folder), leaderboard(folder, metric), items_table(folder, metric)


def load(root: Path, folder_value: str, metric: str | None) -> tuple[Any, ...]:
    choices, metric, summary, board, items = tables(root, folder_value, metric)
    return gr.update(choices=choices, value=metric), summary, board, items


def show_grid(root: Path, folder_value: str, event: gr.SelectData) -> tuple[Image.Image | None, str]:
    folder = results_folder(folder_value, root)
    row = event.row_value or []
    if not row:
        return None, "Select a row of the item table."
    image = item_grid(folder, str(row[0]))
    return image, f"Grid of **{row[0]}** (source first; scores in the captions)"


def _initial(root: Path) -> tuple[list[tuple[str, str]], str | None, str, Any, Any, str]:
    """The default folder's tables at start-up (empty when it has none)."""
    default = Path(root) / DEFAULT_FOLDER
    if not (default / "table.csv").is_file():
        return [], None, "", None, None, ""
    try:
        return *tables(root, str(default), None), str(default)
    except (gr.Error, OSError, KeyError, ValueError, IndexError) as error:  # a half-written folder: start empty
        logger.warning("leaderboard: could not read %s: %s", default, error)
        return [], None, "", None, None, str(default)


def create_demo(hub: Hub) -> None:
    gr.Markdown(
        "Scores from `python -m evaluation evaluate` on an EditEval-style dataset: mean over items per method "
        "and task (click a column header to sort). Select an item row to see its grid."
    )
    root = hub.settings.results_root
    choices, metric_value, summary_value, board_value, items_value, start = _initial(root)
    with gr.Row():
        folder = gr.Textbox(value=start, label="Results folder", placeholder=str(root / DEFAULT_FOLDER), scale=3)
        metric = gr.Dropdown(choices=choices, value=metric_value, label="Metric", scale=2)
        load_button = gr.Button("Load", scale=1)
    summary = gr.Markdown(summary_value)
    board = gr.Dataframe(
        value=board_value, label="Method x task (mean)", interactive=False, elem_id="leaderboard-table"
    )
    items = gr.Dataframe(
        value=items_value,
        label="Items (select a row for its grid)",
        interactive=False,
        elem_id="leaderboard-items",
    )
    caption = gr.Markdown()
    grid = gr.Image(type="pil", label="Item grid", interactive=False, elem_id="leaderboard-grid")
    outputs = [metric, summary, board, items]

    def load_tables(folder_value: str, metric: str | None) -> tuple[Any, ...]:  # the API's parameter names
        return load(root, folder_value, metric)

    def grid_of(folder_value: str, event: gr.SelectData) -> tuple[Image.Image | None, str]:
        return show_grid(root, folder_value, event)

    load_button.click(load_tables, inputs=[folder, metric], outputs=outputs, api_name="leaderboard", queue=False)
    on_draw(folder.submit, load_tables, [folder, metric], outputs)
    on_draw(metric.input, load_tables, [folder, metric], outputs)
    on_draw(items.select, grid_of, [folder], [grid, caption])
