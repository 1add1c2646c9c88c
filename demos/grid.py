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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from methods.core.runner import Comparison
from methods.core.spec import InputError

SOURCE = "Source photo"
HISTORY_SIZE = 12
REPLAY_VERSION = 1


def gallery_items(comparison: Comparison | None, extras: bool = False) -> list[tuple[Image.Image, str]]:
    """The grid as the gallery shows it: the condition, each method's cell, and its extras when asked for."""
    if comparison is None:
        return []
    return [(cell.image, cell.caption) for cell in comparison.cells if extras or cell.kind != "extra"]


def extras_count(comparison: Comparison | None) -> int:
    return 0 if comparison is None else sum(cell.kind == "extra" for cell in comparison.cells)


def slider_names(comparison: Comparison | None) -> list[str]:
    """What the compare slider can show on either side: the source photo, then every cell that has a picture."""
    if comparison is None:
        return [SOURCE]
    names = [SOURCE] if _source(comparison) is not None else []
    return names + [cell.header or cell.caption for cell in comparison.cells if cell.kind in {"result", "extra"}]


def slider_picture(comparison: Comparison | None, name: str | None) -> Image.Image | None:
    if comparison is None or not name:
        return None
    if name == SOURCE:
        return _source(comparison)
    for cell in comparison.cells:
        if cell.kind in {"result", "extra"} and (cell.header or cell.caption) == name:
            return cell.image
    return None


def slider_pair(comparison: Comparison | None, left: str | None, right: str | None) -> tuple[Any, Any] | None:
    """The two pictures for the before/after slider, the left one resized to the right one's size."""
    a, b = slider_picture(comparison, left), slider_picture(comparison, right)
    if a is None or b is None:
        return None
    return a.convert("RGB").resize(b.size), b.convert("RGB")


def selected_name(comparison: Comparison | None, index: int | None, extras: bool) -> str | None:
    """The slider name of the gallery item clicked (``index`` counts the items the gallery shows)."""
    if comparison is None or index is None:
        return None
    shown = [cell for cell in comparison.cells if extras or cell.kind != "extra"]
    if not 0 <= index < len(shown) or shown[index].kind not in {"result", "extra"}:
        return None
    return shown[index].header or shown[index].caption


def _source(comparison: Comparison) -> Image.Image | None:
    condition = next((cell for cell in comparison.cells if cell.kind == "condition"), None)
    return comparison.source if comparison.source is not None else condition.image if condition else None


@dataclass
class Run:
    """One entry of the session's history: the Run's inputs as the widgets held them, and what came out."""

    values: list[Any]  # the Run handler's values, in its input order
    comparison: Comparison
    title: str
    thumb: Image.Image = field(init=False)

    def __post_init__(self) -> None:
        self.thumb = ImageOps.contain(self.comparison.grid.convert("RGB"), (256, 256))


def remember(history: list[Run] | None, run: Run) -> list[Run]:
    """The session's history with ``run`` added last (the oldest dropped past HISTORY_SIZE)."""
    return [*(history or []), run][-HISTORY_SIZE:]


def history_items(history: list[Run] | None) -> list[tuple[Image.Image, str]]:
    return [(run.thumb, run.title) for run in reversed(history or [])]


def history_run(history: list[Run] | None, index: int | None) -> Run | None:
    """The run behind the clicked thumbnail (the strip shows the newest first)."""
    runs = list(reversed(history or []))
    return runs[index] if index is not None and 0 <= index < len(runs) else None


def records_rows(comparison: Comparison | None) -> list[list[Any]]:
    rows = []
    for r in comparison.records if comparison is not None else []:
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
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError("That file is not a records JSON: upload the records.json a run wrote.") from None
    block = data.get("replay") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not isinstance(block.get("values"), dict):
        raise InputError("That records JSON has no replay block: it was written by an older version or by a script.")
    if block.get("tab") != tab:
        raise InputError(f"That run belongs to the {block.get('tab')} tab: upload it there.")
    values = {name: value for name, value in block["values"].items() if name in names and _jsonable(value)}
    return values, [str(name) for name in block.get("not_stored", [])]
