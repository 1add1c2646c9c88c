"""Up-front cost estimates: how long a method will take on this backbone and device, before it runs.

A method declares its work in *cost units* (``Method.cost``: UNet or DiT evaluations at the working size, one batch
element of one forward pass each; the helpers below count the common patterns). Seconds per unit come from the
last runs on this machine (:class:`CostBook`, a small JSON file of measured timings per backbone, device and
dtype) or, before any run, from the declared figures in :data:`SECONDS_PER_UNIT`. A method costing more than
:data:`SLOW_FACTOR` plain samplings is *slow* (:func:`is_slow`): on a CPU the UI leaves it off by default
(:func:`default_selection`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from methods.core.attention import BRANCHES
from methods.core.limits import InputError
from methods.core.null_text import NullTextOptions
from methods.core.registry import get_method
from methods.core.spec import Method

logger = logging.getLogger(__name__)

SLOW_FACTOR = 3.0  # slow = more work than this many plain classifier-free-guided samplings
KEEP_RUNS = 5  # measured runs kept per method; the estimate is their median

# -- what one unit of work is worth, in evaluations ------------------------------------------------------------
# One optimisation step through the UNet (forward + backward) when only an input gets gradients (a latent, a text
# embedding): measured on CPU fp32 at 512 px, bench/results/layout_drag_sd15_20261203-*.json, against a forward of
# about 5 s: DragDiffusion 361 s for 30 iterations, BoxDiff 459 s for 41 gradient steps, layout guidance 93 s for
# 5 -> 2.0-2.3 forwards each.
GRADIENT_STEP = 2.2
# One LoRA training step (forward + backward with weight gradients): DragDiffusion + LoRA took 765 s, 404 s more
# than DragDiffusion for 20 LoRA steps and 16 probe evaluations -> about 3 forwards a step.
LORA_STEP = 3.0
# One gradient of a score of the decoded x̂0 (VAE decoder + an image network, forward + backward) at the working
# size; the decoder alone costs a few UNet evaluations: sound guidance took 92 s against 43 s for ImageBind ->
# IP-Adapter at the same strength, i.e. about 8 evaluations for its one guided step (bench/results/audio_class_sd15_*).
PIXEL_GRADIENT = 8.0
CONTROLNET = 0.5  # a ControlNet pass is the UNet's encoder and middle block: about half an evaluation
# Inputs the estimate cannot see (only the method's params): a typical layout and a typical drag.
TYPICAL_BOXES = 2  # layout boxes: MultiDiffusion denoises one region per box plus the background
TYPICAL_DRAG_CELLS = 12.0  # the longest drag in latent cells (about 100 px at 512 px): SDE-Drag's move count

# -- seconds per unit before anything was measured, by (tiny backbone?, device type, dtype) ---------------------
SECONDS_PER_UNIT: dict[tuple[bool, str, str], float] = {
    # measured: the median over the 21 methods of bench/results/*tiny*.json (128 px, 2 threads) of seconds / cost at
    # 2 steps (0.007-0.18: at that size the VAE and text encoder weigh as much as the UNet)
    (True, "cpu", "float32"): 0.06,
    # measured: bench/results/full-sd15-cpu-20261203-124013.json (SD 1.5 at 512 px, fp32, 2 threads): the methods
    # with the most units run at 5-6.5 s a unit (masactrl 5.8, plug_and_play 6.4, null_text_p2p 6.2); the median
    # over all 35 at 2 steps, 9.4 s, still carries the fixed VAE and text-encoder seconds a longer run spreads out
    (False, "cpu", "float32"): 6.0,
    (False, "cpu", "bfloat16"): 9.0,  # declared: CPUs without bf16 matrix units run it slower than fp32
    # declared: an H200 / A100 runs SD 1.5 at 512 px at about 25-50 steps/s with CFG (2 evaluations a step)
    (False, "cuda", "float16"): 0.02,
    (False, "cuda", "bfloat16"): 0.02,  # declared: as float16
    (False, "cuda", "float32"): 0.06,  # declared: about 3x float16 (no half-precision tensor cores)
    (True, "cuda", "float32"): 0.004,  # declared: tiny models are kernel-launch bound
    (True, "cuda", "float16"): 0.004,  # declared: as float32
    (False, "mps", "float16"): 0.25,  # declared: Apple M-series, about 2 steps/s with CFG at 512 px
    (True, "mps", "float16"): 0.01,  # declared
}


class BackboneLike(Protocol):
    """What an estimate reads of a backbone (``methods.core.backbone.Backbone``; tests pass stand-ins)."""

    profile: Any  # .name, .is_tiny
    device: Any  # .type
    dtype: Any


def dtype_name(dtype: Any) -> str:
    """``torch.float16`` -> ``"float16"`` (strings pass through)."""
    return str(dtype).replace("torch.", "")


def default_seconds(backbone: BackboneLike) -> float:
    """The declared seconds per unit of ``backbone``: its exact entry, else its device in float32, else a CPU's."""
    tiny, device = bool(backbone.profile.is_tiny), backbone.device.type
    for key in ((tiny, device, dtype_name(backbone.dtype)), (tiny, device, "float32"), (tiny, "cpu", "float32")):
        if key in SECONDS_PER_UNIT:
            return SECONDS_PER_UNIT[key]
    return SECONDS_PER_UNIT[(False, "cpu", "float32")]


# -- counting helpers the methods' ``cost`` overrides share -------------------------------------------------------
def denoised(steps: int, strength: float) -> int:
    """The steps an image-to-image call denoises, int(steps x strength) as diffusers counts them (at least 1 here:
    the run itself refuses zero with a sentence, an estimate never does)."""
    return max(1, min(int(steps * strength), steps))


def fraction_steps(steps: int, fraction: float) -> int:
    """``max(1, round(fraction x steps))``: how the inverting methods turn a fraction into a level."""
    return max(1, round(fraction * steps))


def inversion_cost(kind: str, steps: int, inner_steps: int = NullTextOptions.inner_steps) -> float:
    """A photo's inversion (``methods.core.inversion``): the DDIM pivot is one unguided evaluation a step; direct
    inversion adds a guided step a step; null-text adds, a step, the conditional evaluation, ``inner_steps``
    forward + backward iterations on the null embedding and the final unconditional evaluation (no early stop)."""
    extra = {"direct": 2.0 * steps, "null-text": steps * (2.0 + GRADIENT_STEP * inner_steps)}
    return steps + extra.get(kind, 0.0)


def branch_edit_cost(kind: str, steps: int, inner_steps: int = NullTextOptions.inner_steps) -> float:
    """Invert, then denoise the source and the target branch together with CFG (``methods.core.branches``)."""
    return inversion_cost(kind, steps, inner_steps) + 2.0 * BRANCHES * steps


def controlnet_cost(steps: int, params: Mapping[str, Any], nets: int = 1) -> float:
    """A ControlNet pipeline (``methods.core.controlnet``): CFG evaluations plus ``nets`` ControlNet passes inside the
    control window, over the steps the strength denoises (all of them without a photo: the estimate cannot tell)."""
    window = max(0.0, params["control_end"] - params["control_start"])
    return 2.0 * steps * (1.0 + CONTROLNET * nets * window)


# -- slow methods and the default selection ---------------------------------------------------------------------
def method_cost(method_cls: type[Method], steps: int, params: Mapping[str, Any] | None = None) -> float:
    """``method_cls.cost`` with its params resolved (defaults filled; values a client may not send fall back to the
    defaults, since an estimate is shown while the visitor is still typing)."""
    try:
        resolved = method_cls.resolve_params(dict(params or {}))
    except InputError:
        logger.debug("cost of %s: params %r not usable, estimating with the defaults", method_cls.name, params)
        resolved = method_cls.resolve_params(None)
    return float(method_cls.cost(int(steps), resolved))


def is_slow(method_cls: type[Method], steps: int = 30) -> bool:
    """More than :data:`SLOW_FACTOR` plain samplings' work with the default params."""
    return method_cost(method_cls, steps) > SLOW_FACTOR * 2.0 * steps


def default_selection(backbone: BackboneLike, methods: Sequence[type[Method]], steps: int) -> list[str]:
    """The method names ticked by default: all of them on a GPU; on a CPU all but the slow ones, and never none
    (if every one is slow, the cheapest)."""
    if backbone.device.type != "cpu" or not methods:
        return [m.name for m in methods]
    chosen = [m.name for m in methods if not is_slow(m, steps)]
    return chosen or [min(methods, key=lambda m: method_cost(m, steps)).name]


def short_duration(seconds: float) -> str:
    """ "<1 s", "~12 s", "~3 min", "~1.5 h": what a checkbox label or the Run button shows."""
    if seconds < 1:
        return "<1 s"
    if seconds < 59.5:
        return f"~{round(seconds)} s"
    if seconds < 3570:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


# -- measured timings on this machine -----------------------------------------------------------------------------
class CostBook:
    """Seconds per cost unit of each method's recent successful runs (the last :data:`KEEP_RUNS`), per backbone
    profile, device type and dtype, kept in a JSON file at ``path`` (the UI's ``<output_dir>/timings.json``).

    Thread-safe; every change is written atomically (a temporary file, then ``os.replace``); a missing or unreadable
    file starts an empty book (with a warning for an unreadable one), and a failed write only logs a warning."""

    def __init__(self, path: Path | str, keep: int = KEEP_RUNS) -> None:
        self.path = Path(path)
        self.keep = keep
        self._lock = threading.Lock()
        self._stamp = self._mtime()
        self._book: dict[str, dict[str, list[float]]] = self._load()

    @staticmethod
    def key(backbone: BackboneLike) -> str:
        """``"<profile>/<device type>/<dtype>"``, e.g. ``"sd15/cuda/float16"``."""
        return f"{backbone.profile.name}/{backbone.device.type}/{dtype_name(backbone.dtype)}"

    # -- the file --------------------------------------------------------------------------------------------------
    def _mtime(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def _refresh(self) -> None:
        """Re-read the file when another process wrote it since (a ZeroGPU worker, another replica); lock held."""
        stamp = self._mtime()
        if stamp != self._stamp:
            self._book, self._stamp = self._load(), stamp

    def _load(self) -> dict[str, dict[str, list[float]]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                str(key): {str(name): [float(v) for v in values][-self.keep :] for name, values in methods.items()}
                for key, methods in data.items()
            }
        except (OSError, ValueError, TypeError, AttributeError) as error:
            logger.warning("timings file %s is unreadable (%s); starting with no measured timings", self.path, error)
            return {}

    def _save(self) -> None:
        """Write the book atomically (called with the lock held)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".timings-", suffix=".json", dir=self.path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(self._book, file, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
            self._stamp = self._mtime()
        except OSError as error:
            logger.warning("could not write the timings file %s: %s", self.path, error)

    # -- recording -------------------------------------------------------------------------------------------------
    def observe(self, backbone: BackboneLike, record: Mapping[str, Any]) -> None:
        """Learn from one runner record (``methods.core.runner.run_method``): a successful run's seconds per unit of
        its cost. Records of other statuses, unknown methods and unusable numbers are ignored."""
        if record.get("status") != "ok":
            return
        try:
            method_cls = get_method(str(record["method"]))
            cost = method_cost(method_cls, int(record["steps"]), record.get("params"))
            seconds = float(record["seconds"])
        except (KeyError, TypeError, ValueError) as error:
            logger.warning("timings: ignoring a record without a usable method, steps or seconds (%s)", error)
            return
        if not (math.isfinite(cost) and cost > 0 and math.isfinite(seconds) and seconds >= 0):
            return
        with self._lock:
            self._refresh()
            runs = self._book.setdefault(self.key(backbone), {}).setdefault(method_cls.name, [])
            runs.append(seconds / cost)
            del runs[: -self.keep]
            self._save()

    def measured(self, backbone: BackboneLike, method_name: str) -> list[float]:
        """The kept seconds per unit of ``method_name`` on ``backbone``, oldest first."""
        with self._lock:
            return list(self._book.get(self.key(backbone), {}).get(method_name, []))

    # -- estimating ------------------------------------------------------------------------------------------------
    def seconds_per_unit(self, backbone: BackboneLike, method_name: str) -> tuple[float, str]:
        """(seconds per unit, "measured" | "estimated"): the method's own median; else the median over the methods
        measured on this backbone (one median each); else the declared default."""
        with self._lock:
            self._refresh()
            methods = self._book.get(self.key(backbone), {})
            own = methods.get(method_name)
            if own:
                return statistics.median(own), "measured"
            others = [statistics.median(runs) for runs in methods.values() if runs]
        if others:
            return statistics.median(others), "estimated"
        return default_seconds(backbone), "estimated"

    def estimate(
        self, backbone: BackboneLike, method_name: str, steps: int, params: Mapping[str, Any] | None = None
    ) -> tuple[float, str]:
        """(expected seconds of one run, "measured" | "estimated") with ``params`` (None: the defaults)."""
        per_unit, source = self.seconds_per_unit(backbone, method_name)
        return per_unit * method_cost(get_method(method_name), steps, params), source

    def label(
        self, backbone: BackboneLike, method_name: str, steps: int, params: Mapping[str, Any] | None = None
    ) -> str:
        """The estimate as a checkbox shows it: "~12 s", "~3 min"."""
        return short_duration(self.estimate(backbone, method_name, steps, params)[0])

    def total(
        self,
        backbone: BackboneLike,
        names: Sequence[str],
        steps: int,
        params_by_method: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> float:
        """Expected seconds of running ``names`` one after the other (the Run button's estimate)."""
        params_by_method = params_by_method or {}
        return sum(self.estimate(backbone, name, steps, params_by_method.get(name))[0] for name in names)
