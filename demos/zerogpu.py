"""Hugging Face ZeroGPU: each Run asks for a GPU for as long as it is expected to take.

On a ZeroGPU Space the platform sets ``SPACES_ZERO_GPU=true``. Importing the ``spaces`` package then patches
torch in the main process (``torch.cuda.is_available()`` answers True, and tensors moved to ``"cuda"`` are
recorded and kept in CPU memory); at ``launch`` they are packed to disk, and every ``@spaces.GPU`` call runs in a
*forked worker process* that is given a real GPU and moves the recorded tensors onto it first
(``spaces/zero/torch/patching.py``: ``patch``, ``pack``, ``move``; ``spaces/zero/wrappers.py``). So:

- ``spaces`` must be imported before the backbone is built (``prepare_backbone_for_zerogpu``), or the backbone
  lands on the CPU;
- every handler that runs a model must be wrapped (``gpu_task``); the arguments and every yielded value are
  pickled across the process boundary; generator handlers stream through (``generator_function_wrapper``);
- what a GPU call loads or caches (an add-on, an inversion) lives in that worker only: it is kept while the
  platform hands the same idle worker the next call, and lost when a fresh worker is forked.

``duration`` may be a callable taking the handler's own arguments (``static_duration`` in
``spaces/zero/wrappers.py``); it is evaluated in the main process before the GPU is scheduled. Off ZeroGPU
``gpu_task`` returns the handler itself and ``spaces`` is never imported.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from methods.core.settings import Settings

logger = logging.getLogger(__name__)

ENV = "SPACES_ZERO_GPU"  # what ``spaces.config.Config.zero_gpu`` reads
MIN_SECONDS = 15  # shorter requests gain little queue priority and leave no room for the workers' start
MAX_SECONDS = 300  # a free visitor's daily quota is minutes: a longer request is refused before it runs
MARGIN_FACTOR = 1.5  # the estimate is a median of past runs; a Run may take longer
MARGIN_SECONDS = 10.0  # a fresh worker moves the resident weights onto the GPU before the handler starts

Estimate = Callable[[Sequence[str], int], float]  # (method names, steps) -> expected seconds


def on_zerogpu() -> bool:
    """True on a ZeroGPU Space: ``SPACES_ZERO_GPU`` parsed as the ``spaces`` package parses it ("1", "t", "true",
    any case). The package reads it once, at import; the platform sets it before the process starts."""
    value = os.environ.get(ENV)
    return value is not None and value.lower() in ("1", "t", "true")


def requested_seconds(expected: float, minimum: float = MIN_SECONDS, maximum: float = MAX_SECONDS) -> int:
    """The GPU time to ask for a call expected to take ``expected`` seconds: ``expected × 1.5 + 10``, rounded up,
    within ``[minimum, maximum]``; an estimate that is not a finite number asks for ``maximum``."""
    if not isinstance(expected, int | float) or not math.isfinite(expected):
        return math.ceil(maximum)
    padded = max(0.0, float(expected)) * MARGIN_FACTOR + MARGIN_SECONDS
    return math.ceil(min(max(padded, minimum), maximum))


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, key: str) -> Any:
    return args[index] if index < len(args) else kwargs.get(key)


def _method_names(value: Any) -> list[str] | None:
    if not isinstance(value, list | tuple):
        return None
    return [name for name in value if isinstance(name, str)]


def _steps(value: Any, default: int) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(1, round(value))


def duration_for(
    estimate: Estimate,
    *,
    names_index: int,
    steps_index: int,
    default_steps: int = 30,
    names_key: str = "methods",
    steps_key: str = "steps",
) -> Callable[..., float]:
    """The expected seconds of a handler call, from ``estimate(method names, steps)``, for ``gpu_task``.

    The handler is called with its values in a known order: the chosen method names are argument
    ``names_index`` and the steps argument ``steps_index`` (a keyword call is read by ``names_key`` /
    ``steps_key``). Steps left empty count as ``default_steps``. Values the handler will refuse (no list of
    names, steps that are not a number) expect 0 s, so the call asks for the minimum and the handler answers
    with its own sentence; an estimate that fails expects ``inf`` (``gpu_task`` then asks for its maximum).
    """

    def expected(*args: Any, **kwargs: Any) -> float:
        names = _method_names(_argument(args, kwargs, names_index, names_key))
        steps = _steps(_argument(args, kwargs, steps_index, steps_key), default_steps)
        if not names or steps is None:
            return 0.0
        try:
            seconds = float(estimate(names, steps))
        except Exception:  # noqa: BLE001 - a failing estimate must never keep a Run from its GPU
            logger.warning("ZeroGPU: no estimate for %s at %d steps; asking for the most", names, steps, exc_info=True)
            return math.inf
        logger.info("ZeroGPU: %d method(s) at %d steps expected to take %.1f s", len(names), steps, seconds)
        return seconds

    return expected


def gpu_task(fn: Callable[..., Any], duration: Callable[..., float]) -> Callable[..., Any]:
    """``fn`` as a ZeroGPU task: ``spaces.GPU(duration=...)(fn)`` on ZeroGPU, ``fn`` itself elsewhere.

    ``duration`` takes the same arguments as ``fn`` and returns the seconds the call is expected to take; the
    request is ``requested_seconds`` of that (margin added, clamped) and is logged. The result keeps ``fn``'s
    name, docstring and ``__signature__`` (the API parameter names gradio_client shows), and a generator
    function stays one, so Gradio still streams its partial results.
    """
    if not on_zerogpu():
        return fn
    if "spaces" not in sys.modules:
        logger.warning("ZeroGPU: spaces imported only now; build the backbone after prepare_backbone_for_zerogpu")
    import spaces

    def request(*args: Any, **kwargs: Any) -> int:
        try:
            expected = duration(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a failing estimate must never keep a Run from its GPU
            logger.warning("ZeroGPU: the duration of %s failed; asking for the most", fn.__name__, exc_info=True)
            expected = math.inf
        if not isinstance(expected, int | float):
            expected = math.inf  # not a number of seconds: ask for the most rather than fail the Run
        seconds = requested_seconds(expected)
        logger.info("ZeroGPU: %s asks for %d s of GPU time (expected %.1f s)", fn.__name__, seconds, expected)
        return seconds

    wrapped = spaces.GPU(duration=request)(with_sentences(fn))
    if wrapped is not fn:
        functools.update_wrapper(wrapped, fn)  # spaces uses functools.wraps already; this keeps it so
    if inspect.isgeneratorfunction(fn) and not inspect.isgeneratorfunction(wrapped):
        raise TypeError(f"spaces.GPU made the generator {fn.__name__} a plain function: Gradio would not stream it")
    return wrapped


def with_sentences(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` raising ``gr.Error`` for an ``InputError``: a ZeroGPU worker passes only ``gr.Error`` on to the visitor
    (anything else becomes "ZeroGPU worker error"), so the handler's sentence must be one before it leaves."""
    import gradio as gr

    from methods.core.spec import InputError

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except InputError as error:
                raise gr.Error(str(error), print_exception=False) from None

        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as error:
            raise gr.Error(str(error), print_exception=False) from None

    return call


def prepare_backbone_for_zerogpu(settings: Settings) -> Settings:
    """The settings to build the backbone with. On ZeroGPU: import ``spaces`` first (its torch patch is what lets
    ``.to("cuda")`` work in a process without a GPU; CUDA must not be initialised before it) and put the backbone
    on ``"cuda"`` when the device is ``auto``. Elsewhere ``settings`` unchanged."""
    if not on_zerogpu():
        return settings
    import spaces  # noqa: F401 - patches torch: the "cuda" weights made from now on are moved to each call's GPU

    if settings.device == "auto":
        logger.info("ZeroGPU: the backbone is built on cuda (moved to the GPU of each call)")
        return replace(settings, device="cuda")
    if settings.device != "cuda":
        logger.warning("ZeroGPU: the backbone stays on %s (HUB_DEVICE); Runs will not use the GPU", settings.device)
    return settings
