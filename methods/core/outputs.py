"""Per-run output folders (grid PNG + records JSON) under one app-owned directory, deleted by count and age.

A public Space answers thousands of Runs; each used to leave a temp folder behind forever. Every run now writes
into ``<root>/<time>-<condition>-<id>/``; making a new one first deletes the folders beyond the newest ``keep``
and those older than ``max_age`` seconds. Only folders with that name pattern are ever deleted, so a root that
is shared with anything else loses nothing else. Gradio copies what it serves into its own cache (cleaned by
``delete_cache`` in app.py), so deleting a finished run's folder never breaks a download.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
import uuid
from pathlib import Path

_RUN_NAME = re.compile(r"^\d{8}-\d{6}-[a-z]+-[0-9a-f]{8}$")


class RunFolders:
    def __init__(self, root: Path, keep: int = 200, max_age: float = 3600.0) -> None:
        self.root = Path(root)
        self.keep = max(1, int(keep))
        self.max_age = float(max_age)
        self._lock = threading.Lock()

    def new(self, condition: str) -> Path:
        """A fresh folder for one run (older ones pruned first)."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            self._prune(keep=self.keep - 1)
            folder = self.root / f"{time.strftime('%Y%m%d-%H%M%S')}-{condition}-{uuid.uuid4().hex[:8]}"
            folder.mkdir()
            return folder

    def prune(self) -> None:
        with self._lock:
            self._prune(keep=self.keep)

    def folders(self) -> list[Path]:
        """The run folders, oldest first."""
        if not self.root.is_dir():
            return []
        runs = [p for p in self.root.iterdir() if p.is_dir() and _RUN_NAME.match(p.name)]
        return sorted(runs, key=lambda p: (p.stat().st_mtime, p.name))

    def usage(self) -> tuple[int, int]:
        """(number of run folders, bytes in them)."""
        runs = self.folders()
        return len(runs), sum(f.stat().st_size for run in runs for f in run.rglob("*") if f.is_file())

    def _prune(self, keep: int) -> None:
        runs = self.folders()
        cutoff = time.time() - self.max_age
        for index, folder in enumerate(runs):
            if index < len(runs) - keep or folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
