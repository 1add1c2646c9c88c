"""Leaderboard tab: the method x task table of an EditEval results folder, with each item's grid a click away.

The folder is what ``python -m evaluation evaluate --out DIR`` wrote (``table.csv``, ``scores.csv``,
``run.json``, ``items/<id>/grid.png``). The tab only reads files; it runs nothing.
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

from demos.common import Hub
from evaluation.editeval import metric_label
from evaluation.metrics import METRICS

logger = logging.getLogger(__name__)

TITLE = "Leaderboard"
DEFAULT_FOLDER = Path("outputs/editeval")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def results_folder(value: str | None) -> Path:
    folder = Path((value or "").strip() or DEFAULT_FOLDER).expanduser()
    if not (folder / "table.csv").is_file():
        raise gr.Error(
            f"No results in {folder}: run `python -m evaluation evaluate --dataset DIR --out {folder}` first, "
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


def tables(folder_value: str, metric: str | None) -> tuple[list[tuple[str, str]], str, str, Any, Any]:
    """(metric choices, chosen metric, run summary, method x task table, item table) of a results folder."""
    folder = results_folder(folder_value)
    metrics = metrics_in(folder)
    metric = metric if metric in metrics else metrics[0]
    choices = [(metric_label(m), m) for m in metrics]
    return choices, metric, run_summary(folder), leaderboard(folder, metric), items_table(folder, metric)


def load(folder_value: str, metric: str | None) -> tuple[Any, ...]:
    choices, metric, summary, board, items = tables(folder_value, metric)
    return gr.update(choices=choices, value=metric), summary, board, items


def show_grid(folder_value: str, event: gr.SelectData) -> tuple[Image.Image | None, str]:
    folder = results_folder(folder_value)
    row = event.row_value or []
    if not row:
        return None, "Select a row of the item table."
    image = item_grid(folder, str(row[0]))
    return image, f"Grid of **{row[0]}** (source first; scores in the captions)"


def _initial() -> tuple[list[tuple[str, str]], str | None, str, Any, Any, str]:
    """The default folder's tables at start-up (empty when it has none)."""
    if not (DEFAULT_FOLDER / "table.csv").is_file():
        return [], None, "", None, None, ""
    try:
        return *tables(str(DEFAULT_FOLDER), None), str(DEFAULT_FOLDER)
    except (gr.Error, OSError, KeyError, ValueError, IndexError) as error:  # a half-written folder: start empty
        logger.warning("leaderboard: could not read %s: %s", DEFAULT_FOLDER, error)
        return [], None, "", None, None, str(DEFAULT_FOLDER)


def create_demo(hub: Hub) -> None:
    gr.Markdown(
        "Scores from `python -m evaluation evaluate` on an EditEval-style dataset: mean over items per method "
        "and task (click a column header to sort). Select an item row to see its grid."
    )
    choices, metric_value, summary_value, board_value, items_value, start = _initial()
    with gr.Row():
        folder = gr.Textbox(value=start, label="Results folder", placeholder=str(DEFAULT_FOLDER), scale=3)
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
    load_button.click(load, inputs=[folder, metric], outputs=outputs, api_name="leaderboard")
    folder.submit(load, inputs=[folder, metric], outputs=outputs, api_visibility="private")
    metric.input(load, inputs=[folder, metric], outputs=outputs, api_visibility="private")
    items.select(show_grid, inputs=[folder], outputs=[grid, caption], api_visibility="private")
