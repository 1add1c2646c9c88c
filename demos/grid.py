"""What a visitor does with a finished (or still filling) comparison: the readable gallery, the compare slider,
the session's history strip and the replay of a downloaded records JSON.

The gallery shows the runner's pictures as they are (an API client gets the methods' outputs, bit for bit) with
their captions, which the app's CSS wraps over the bottom of each cell so the method's name and parameters stay
legible; the downloadable grid PNG draws them as headers. A method's extra pictures (masks, maps, attention)
follow their method's cell and are shown only on request.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from methods.core.limits import shown
from methods.core.runner import Comparison
from methods.core.spec import InputError

SOURCE = "Source photo"
HISTORY_SIZE = 12
REPLAY_VERSION = 1
MAX_REPLAY_BYTES = 2**20


@dataclass(frozen=True)
class Picture:
    """One cell as the session keeps it: where its picture was saved, not the picture."""

    path: Path
    caption: str
    kind: str
    name: str  # what the compare slider calls it


@dataclass
class Shown:
    """A comparison as a session keeps it (on screen and in its history): paths into the run folder, the records
    and the files — no pictures in memory, so many sessions with long histories stay small."""

    pictures: list[Picture]
    records: list[dict[str, Any]]
    files: list[Path]
    source: Path | None
    grid: Path
    extras: bool = True  # whether the gallery shows the extras (a click's index counts what it shows)

    @classmethod
    def of(cls, comparison: Comparison, extras: bool = True) -> Shown:
        pictures = [
            Picture(cell.path, cell.caption, cell.kind, cell.header or cell.caption)
            for cell in comparison.cells
            if cell.path is not None
        ]
        return cls(
            pictures,
            list(comparison.records),
            list(comparison.files),
            comparison.source_path,
            comparison.files[0],
            extras,
        )

    def exists(self) -> bool:
        """False once the run folder was swept away (``HUB_KEEP_RUNS`` / ``HUB_KEEP_SECONDS``)."""
        return self.grid.exists() and all(picture.path.exists() for picture in self.pictures)


def _results_first(cells: list[Any], extras: bool) -> list[Any]:
    """The condition and every method's cell in run order, then (when asked for) the extras, grouped by method."""
    return [c for c in cells if c.kind != "extra"] + ([c for c in cells if c.kind == "extra"] if extras else [])


def gallery_items(comparison: Comparison | None, extras: bool = True) -> list[tuple[str, str]]:
    """The grid as the gallery shows it (the saved PNGs: the outputs bit for bit, encoded once)."""
    if comparison is None:
        return []
    return [(str(cell.path), cell.caption) for cell in _results_first(comparison.cells, extras)]


def shown_items(shown: Shown | None, extras: bool = True) -> list[tuple[str, str]]:
    """``gallery_items`` of a kept comparison (empty once its run folder was swept)."""
    if shown is None or not shown.exists():
        return []
    return [(str(p.path), p.caption) for p in _results_first(shown.pictures, extras)]


def extras_count(comparison: Comparison | None) -> int:
    return 0 if comparison is None else sum(cell.kind == "extra" for cell in comparison.cells)


def slider_names(shown: Shown | None) -> list[str]:
    """What the compare slider can show on either side: the source photo, then every cell that has a picture."""
    if shown is None:
        return [SOURCE]
    names = [SOURCE] if shown.source is not None else []
    return names + [p.name for p in shown.pictures if p.kind in {"result", "extra"}]


def slider_picture(shown: Shown | None, name: str | None) -> Image.Image | None:
    if shown is None or not name:
        return None
    path = shown.source if name == SOURCE else None
    for picture in shown.pictures if name != SOURCE else ():
        if picture.kind in {"result", "extra"} and picture.name == name:
            path = picture.path
            break
    if path is None or not path.exists():
        return None
    with Image.open(path) as image:
        return image.convert("RGB")


def slider_pair(shown: Shown | None, left: str | None, right: str | None) -> tuple[Any, Any] | None:
    """The two pictures for the before/after slider, the left one resized to the right one's size."""
    a, b = slider_picture(shown, left), slider_picture(shown, right)
    if a is None or b is None:
        return None
    return a.resize(b.size), b


def selected_name(shown: Shown | None, index: int | None, extras: bool) -> str | None:
    """The slider name of the gallery item clicked (``index`` counts the items the gallery shows)."""
    if shown is None or index is None:
        return None
    visible = _results_first(shown.pictures, extras)
    if not 0 <= index < len(visible) or visible[index].kind not in {"result", "extra"}:
        return None
    return visible[index].name


@dataclass
class Run:
    """One entry of the session's history: the Run's inputs as the widgets held them (pictures as paths into the
    run folder), and what came out."""

    values: list[Any]  # the Run handler's values, in its input order
    shown: Shown
    title: str


def keep_values(values: list[Any], folder: Path) -> list[Any]:
    """The values with every picture in them (an upload, an editor's background, layers and composite) saved into
    ``folder`` and replaced by its path: a widget restores either, and the session keeps no pictures."""
    saved = iter(range(10_000))

    def keep(value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.ndim in (2, 3) and value.dtype == np.uint8:
            value = Image.fromarray(value)
        if isinstance(value, Image.Image):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"input-{next(saved):02d}.png"
            value.save(path)
            return str(path)
        if isinstance(value, dict):
            return {key: keep(item) for key, item in value.items()}
        if isinstance(value, list):
            return [keep(item) for item in value]
        return value

    return [keep(value) for value in values]


def remember(history: list[Run] | None, run: Run) -> list[Run]:
    """The session's history with ``run`` added last: the oldest dropped past HISTORY_SIZE, and the runs whose
    folder was swept away dropped too."""
    return [entry for entry in [*(history or []), run] if entry.shown.exists()][-HISTORY_SIZE:]


def history_items(history: list[Run] | None) -> list[tuple[str, str]]:
    return [(str(run.shown.grid), run.title) for run in reversed(history or [])]


def history_run(history: list[Run] | None, index: int | None) -> Run | None:
    """The run behind the clicked thumbnail (the strip shows the newest first, as ``remember`` left them)."""
    runs = list(reversed(history or []))
    return runs[index] if index is not None and 0 <= index < len(runs) else None


def records_rows(source: Comparison | Shown | None) -> list[list[Any]]:
    rows = []
    for r in source.records if source is not None else []:
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


def _jsonable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if value is None or isinstance(value, str | int | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_jsonable(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def replay_block(tab: str, names: list[str], values: list[Any]) -> dict[str, Any]:
    """What the records JSON keeps to restore a run: every widget value that is plain data (text, numbers,
    choices, the methods and their parameters) by API name. Pictures and sounds are not stored; the block says
    which inputs those were, so a visitor knows to load the same ones."""
    kept = {name: value for name, value in zip(names, values, strict=True) if _jsonable(value)}
    media = [name for name, value in zip(names, values, strict=True) if not _jsonable(value) and value is not None]
    return {"replay": {"version": REPLAY_VERSION, "tab": tab, "values": kept, "not_stored": media}}


def read_replay(path: str | Path | None, tab: str, names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The widget values a downloaded records JSON restores (by API name), and the inputs it could not."""
    if not path:
        raise InputError("Upload a records JSON downloaded from a run (the “Grid PNG and records JSON” files).")
    try:
        if Path(path).stat().st_size > MAX_REPLAY_BYTES:
            raise InputError("That file is too large for a records JSON (1 MB at most).")
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError("That file is not a records JSON: upload the records.json a run wrote.") from None
    block = data.get("replay") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not isinstance(block.get("values"), dict):
        raise InputError("That records JSON has no replay block: it was written by an older version or by a script.")
    if block.get("tab") != tab:
        raise InputError(f"That run belongs to the {shown(block.get('tab'))} tab: upload it there.")
    values = {name: value for name, value in block["values"].items() if name in names and _jsonable(value)}
    media = block.get("not_stored", [])
    return values, [name for name in media if name in names] if isinstance(media, list) else []
