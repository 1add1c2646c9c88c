"""EditEval runner: every text-tab method on every benchmark item, scored, aggregated, resumable.

A dataset folder holds ``manifest.json`` (EditEval v1's layout: ``items`` with ``task``, ``index``,
``source_prompt``, ``target_prompt``, ``instruction`` and ``file``) and the images. Items whose file is
null or missing are skipped and listed in ``run.json``. Each item runs through the comparison runner with a
seed derived from its id, so a rerun reproduces it. Output folder::

    run.json               backbone profile, settings, methods, skipped items, library versions
    items/<id>/source.png  the source at the backbone's working size
    items/<id>/<method>.png, grid.png (source + outputs, scores in the captions), records.json
    items/<id>/scores.json the item's rows and the settings that made them (marks the item as finished)
    scores.csv, scores.json  one row per item and method (metrics, LMM sub-scores, status, seconds)
    table.md, table.csv    method x task: mean ± population std over items (and n), per metric

An item is finished when its ``scores.json`` was made with the same settings and holds every requested
method; finished items are not run again.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from demos import text as text_tab
from evaluation.judge import SUBSCORES, Judge
from evaluation.metrics import DEFAULT_METRICS, METRICS, check_metrics, score_cell
from methods.core.backbone import Backbone
from methods.core.images import compose_grid, fit_image, load_image
from methods.core.registry import get_method, list_methods
from methods.core.runner import run_comparison
from methods.core.spec import Condition, EditInputs, InputError

logger = logging.getLogger(__name__)

ROW_FIELDS = ["item", "task", "index", "method", "label", "status", "seconds", "seed", "message"]
LMM_FIELDS = [f"lmm_{k}" for k in SUBSCORES] + ["lmm_score", "lmm_attempts", "lmm_error"]
TABLE_COLUMNS = ["metric", "method", "task", "mean", "std", "n"]
ALL_TASKS = "all"
EXTRA_LABELS = {"lmm_score": "LMM Score ↑", "seconds": "Seconds per edit ↓"}


@dataclass(frozen=True)
class Item:
    id: str
    task: str
    index: int
    source_prompt: str
    target_prompt: str
    instruction: str
    path: Path | None
    missing_reason: str = ""


def item_seed(item_id: str) -> int:
    """A fixed seed per item, the same on every machine and Python run (crc32 of the id)."""
    return zlib.crc32(item_id.encode("utf-8")) & 0x7FFFFFFF


def load_manifest(dataset: Path) -> tuple[str, list[Item], list[Item]]:
    """(name, usable items, skipped items with missing_reason) from ``dataset/manifest.json``."""
    manifest_path = Path(dataset) / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: the dataset folder needs a manifest.json")
    manifest = json.loads(manifest_path.read_text())
    usable, skipped = [], []
    for entry in manifest["items"]:
        task, index = entry["task"], int(entry["index"])
        path = Path(dataset) / entry["file"] if entry.get("file") else None
        reason = ""
        if path is None:
            reason = f"no image file ({entry.get('missing_reason') or 'file is null'})"
        elif not path.is_file():
            reason = f"image file {entry['file']} is missing"
        item = Item(
            id=f"{task}_{index}",
            task=task,
            index=index,
            source_prompt=entry.get("source_prompt") or "",
            target_prompt=entry.get("target_prompt") or "",
            instruction=entry.get("instruction") or "",
            path=path,
            missing_reason=reason,
        )
        (skipped if reason else usable).append(item)
    return manifest.get("name", Path(dataset).name), usable, skipped


def check_methods(methods: Sequence[str]) -> list[str]:
    text_methods = [m.name for m in list_methods(Condition.TEXT)]
    for name in methods:
        method = get_method(name)  # unknown names fail with the list of known ones
        if method.condition != Condition.TEXT:
            raise InputError(
                f"{method.label} is a {method.condition.value}-tab method; EditEval runs text-tab methods: "
                f"{', '.join(text_methods)}."
            )
    return list(methods)


@dataclass
class RunSettings:
    """What makes an item's results: a finished item is reused only if these match."""

    methods: list[str]
    steps: int
    guidance: float
    metrics: list[str]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    backbone: str = ""
    judge: dict[str, Any] = field(default_factory=dict)

    def matches(self, saved: dict[str, Any]) -> bool:
        mine = asdict(self)
        return (
            set(self.methods) <= set(saved.get("methods", []))
            and all(
                json.dumps(saved.get(k), sort_keys=True, default=str)
                == json.dumps(mine[k], sort_keys=True, default=str)
                for k in ("steps", "guidance", "metrics", "backbone", "judge")
            )
            and all(saved.get("params", {}).get(m) == self.params.get(m) for m in self.methods)
        )


@dataclass
class Summary:
    out: Path
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def metric_label(metric: str) -> str:
    """The heading of a table column or section: the metric's label with its better direction."""
    return METRICS[metric].label if metric in METRICS else EXTRA_LABELS.get(metric, metric)


def _fmt(name: str, value: float) -> str:
    return f"{value:.2f}" if name in {"psnr", "clip_score", "lmm_score", "seconds"} else f"{value:.3f}"


def _score_caption(label: str, row: dict[str, Any], metrics: Sequence[str]) -> str:
    if row["status"] != "ok":
        return f"{label} · {row['status']}: {row['message']}"
    short = {
        "clip_score": "CLIP",
        "clip_directional": "dir",
        "lpips": "LPIPS",
        "ssim": "SSIM",
        "psnr": "PSNR",
        "structure_dist": "struct",
    }
    parts = [f"{short[m]} {_fmt(m, row[m])}" for m in metrics if row.get(m) is not None]
    if row.get("lmm_score") is not None:
        parts.append(f"LMM {row['lmm_score']:.2f}")
    elif "lmm_error" in row:
        parts.append("LMM missing")
    return f"{label} · {row['seconds']:.1f}s · " + " · ".join(parts)


def run_item(
    backbone: Backbone,
    item: Item,
    folder: Path,
    settings: RunSettings,
    judge: Judge | None = None,
) -> list[dict[str, Any]]:
    """Run, save and score one item; returns its rows (one per method)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = fit_image(load_image(item.path, f"the image of {item.id}"), backbone.size, backbone.size_multiple)
    source.save(folder / "source.png")
    inputs = EditInputs(
        image=source,
        prompt=item.target_prompt,
        source_prompt=item.source_prompt,
        instruction=item.instruction,
        steps=settings.steps,
        guidance=settings.guidance,
    )
    seed = item_seed(item.id)
    comparison = run_comparison(
        backbone,
        Condition.TEXT,
        settings.methods,
        inputs,
        seed,
        params=settings.params,
        condition_cell=text_tab.condition_cell(None, inputs),  # the text tab's cell (it needs no hub)
        out_dir=folder,
    )
    rows = []
    grid_cells = [(source, f"{item.id} · {item.instruction}")]
    for record in comparison.records:
        row: dict[str, Any] = {
            "item": item.id,
            "task": item.task,
            "index": item.index,
            "method": record["method"],
            "label": record["label"],
            "status": record["status"],
            "seconds": record.get("seconds"),
            "seed": seed,
            "message": record.get("message", ""),
        }
        if record["status"] == "ok":
            edited = comparison.result(record["method"])
            edited.save(folder / f"{record['method']}.png")
            scores = score_cell(
                backbone, source, edited, item.target_prompt, item.source_prompt, None, settings.metrics
            )
            row.update(scores)
            if judge is not None:
                row.update(judge.judge(source, edited, item.task, item.instruction).as_row())
            grid_cells.append((edited, _score_caption(record["label"], row, settings.metrics)))
        else:
            grid_cells.append((_status_card(comparison, record["method"]), _score_caption(record["label"], row, ())))
        rows.append(row)
    compose_grid(grid_cells).save(folder / "grid.png")
    (folder / "scores.json").write_text(
        json.dumps({"item": asdict(item), "settings": asdict(settings), "rows": rows}, indent=2, default=str)
    )
    return rows


def _status_card(comparison: Any, method: str) -> Image.Image:
    cells = [c for c in comparison.cells if c.kind in {"result", "error", "skipped"}]
    for record, cell in zip(comparison.records, cells, strict=True):
        if record["method"] == method:
            return cell.image
    raise KeyError(method)


def _finished_rows(folder: Path, settings: RunSettings) -> list[dict[str, Any]] | None:
    path = folder / "scores.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    if not settings.matches(saved.get("settings", {})):
        return None
    return [row for row in saved["rows"] if row["method"] in settings.methods]


def evaluate(
    backbone: Backbone,
    dataset: Path,
    out: Path,
    methods: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    steps: int = 20,
    guidance: float = 7.5,
    metrics: Sequence[str] = DEFAULT_METRICS,
    params: dict[str, dict[str, Any]] | None = None,
    judge: Judge | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> Summary:
    """Run the benchmark into ``out`` (resuming finished items) and write the score files and tables."""
    from tqdm import tqdm

    dataset, out = Path(dataset), Path(out)
    methods = check_methods(methods or [m.name for m in list_methods(Condition.TEXT)])
    name, usable, skipped = load_manifest(dataset)
    known_tasks = sorted({i.task for i in usable + skipped})
    if tasks:
        unknown = sorted(set(tasks) - set(known_tasks))
        if unknown:
            raise InputError(f"unknown task(s) {unknown}; this dataset has {', '.join(known_tasks)}.")
        usable = [i for i in usable if i.task in tasks]
        skipped = [i for i in skipped if i.task in tasks]
    if limit is not None:
        usable = usable[:limit]
    for item in skipped:
        logger.warning("skipping %s: %s", item.id, item.missing_reason)
    settings = RunSettings(
        methods=list(methods),
        steps=int(steps),
        guidance=float(guidance),
        metrics=list(check_metrics(metrics)),
        params={m: get_method(m).resolve_params((params or {}).get(m)) for m in methods},
        backbone=backbone.profile.location,
        judge=judge.description if judge is not None else {"kind": "none"},
    )
    summary = Summary(out=out, skipped=[(i.id, i.missing_reason) for i in skipped])
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    bar = tqdm(usable, desc="EditEval", unit="item", disable=not progress)
    for item in bar:
        bar.set_postfix_str(item.id)
        folder = out / "items" / item.id
        rows = _finished_rows(folder, settings)
        if rows is not None:
            summary.reused.append(item.id)
        else:
            rows = run_item(backbone, item, folder, settings, judge)
            summary.ran.append(item.id)
        summary.rows.extend(rows)
    bar.close()
    logger.info(
        "EditEval: %d items run, %d reused (finished before), %d skipped (no image)",
        len(summary.ran),
        len(summary.reused),
        len(summary.skipped),
    )
    write_results(out, summary, settings, judge is not None)
    run_info = {
        "dataset": str(dataset),
        "dataset_name": name,
        "backbone": {
            "profile": backbone.profile.name,
            "location": backbone.profile.location,
            "reason": backbone.profile.reason,
            "device": str(backbone.device),
            "dtype": str(backbone.dtype).replace("torch.", ""),
            "working_size": backbone.size,
        },
        "settings": asdict(settings),
        "tasks": sorted({i.task for i in usable}),
        "seed_rule": "crc32(item id) & 0x7fffffff, item id = <task>_<index>",
        "items_scored": [i.id for i in usable],
        "items_run_now": summary.ran,
        "items_reused": summary.reused,
        "skipped_items": [{"item": i, "reason": r} for i, r in summary.skipped],
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": _versions(),
    }
    (out / "run.json").write_text(json.dumps(run_info, indent=2, default=str))
    return summary


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "diffusers", "transformers", "torchmetrics"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


# -- aggregation and tables -----------------------------------------------------------------------------
def table_metrics(settings_metrics: Sequence[str], judged: bool) -> list[str]:
    return [*settings_metrics, *(["lmm_score"] if judged else []), "seconds"]


def aggregate(rows: Iterable[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and population std (ddof 0) per metric, method and task, plus task ``all`` (over every item).

    Only rows with status ok and a number for the metric count; n is how many did.
    """
    rows = [r for r in rows if r.get("status") == "ok"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    table = []
    for metric in metrics:
        for method in methods:
            for task in [*tasks, ALL_TASKS]:
                values = [
                    float(r[metric])
                    for r in rows
                    if r["method"] == method and (task == ALL_TASKS or r["task"] == task) and _is_number(r.get(metric))
                ]
                if values:
                    table.append(
                        {
                            "metric": metric,
                            "method": method,
                            "task": task,
                            "mean": float(np.mean(values)),
                            "std": float(np.std(values)),
                            "n": len(values),
                        }
                    )
    return table


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def markdown_tables(
    table: list[dict[str, Any]],
    labels: dict[str, str],
    skipped: list[tuple[str, str]],
    unscored: Sequence[dict[str, Any]] = (),
) -> str:
    lines = ["# EditEval results", "", "Cells: mean ± population standard deviation over items (n in `table.csv`)."]
    for metric in dict.fromkeys(row["metric"] for row in table):
        rows = [r for r in table if r["metric"] == metric]
        tasks = [t for t in dict.fromkeys(r["task"] for r in rows) if t != ALL_TASKS] + [ALL_TASKS]
        title = metric_label(metric)
        lines += ["", f"## {title}", "", "| method | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        for method in dict.fromkeys(r["method"] for r in rows):
            cells = []
            for task in tasks:
                match = [r for r in rows if r["method"] == method and r["task"] == task]
                cells.append(f"{_fmt(metric, match[0]['mean'])} ± {_fmt(metric, match[0]['std'])}" if match else "—")
            lines.append(f"| {labels.get(method, method)} | " + " | ".join(cells) + " |")
    if unscored:
        lines += ["", "## Not scored", "", "| item | method | status | message |", "|---|---|---|---|"]
        for row in unscored:
            message = str(row.get("message", "")).replace("|", "/").replace("\n", " ")
            lines.append(
                f"| {row['item']} | {labels.get(row['method'], row['method'])} | {row['status']} | {message} |"
            )
    if skipped:
        lines += ["", f"{len(skipped)} item(s) skipped (no image): " + ", ".join(i for i, _ in skipped) + "."]
    return "\n".join(lines) + "\n"


def write_results(out: Path, summary: Summary, settings: RunSettings, judged: bool) -> None:
    rows = summary.rows
    fields = ROW_FIELDS + list(settings.metrics) + (LMM_FIELDS if judged else [])
    with open(out / "scores.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    (out / "scores.json").write_text(json.dumps(rows, indent=2, default=str))
    table = aggregate(rows, table_metrics(settings.metrics, judged))
    with open(out / "table.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    labels = {m: get_method(m).label for m in settings.methods}
    unscored = [row for row in rows if row["status"] != "ok"]
    (out / "table.md").write_text(markdown_tables(table, labels, summary.skipped, unscored))
