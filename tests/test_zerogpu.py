"""ZeroGPU wrapping (demos/zerogpu.py) without a GPU: a stand-in ``spaces`` module records what it is given."""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import logging
import math
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio.helpers import special_args
from PIL import Image

from demos.zerogpu import (
    MAX_SECONDS,
    MIN_SECONDS,
    duration_for,
    gpu_task,
    on_zerogpu,
    prepare_backbone_for_zerogpu,
    requested_seconds,
)
from methods.core.settings import Settings

ASSETS = Path(__file__).resolve().parents[1] / "assets"

# A Run handler's values: [image, prompt, methods, seed, randomize_seed, steps, ...] (two tab widgets first), then
# the visitor's request and Gradio's progress tracker, named as the tabs name them (gradio_client shows the names).
NAMES = ["image", "prompt", "methods", "seed", "randomize_seed", "steps"]
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
SIGNATURE = inspect.Signature(
    [inspect.Parameter(n, POSITIONAL, default=None) for n in NAMES]
    + [inspect.Parameter("request", POSITIONAL, default=None)]
    + [inspect.Parameter("progress", POSITIONAL, default=gr.Progress())]
)


def stand_in_spaces(wraps: bool = True) -> tuple[types.ModuleType, dict[str, Any]]:
    """A ``spaces`` module whose ``GPU(duration=...)`` records the duration callable, and whose wrapper (a generator
    function for a generator, as ``spaces/zero/decorator.py`` chooses) asks it for seconds before each call."""
    seen: dict[str, Any] = {"requested": []}

    def GPU(task: Callable[..., Any] | None = None, *, duration: Any = None, size: Any = None) -> Any:  # noqa: N802
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            seen["duration"] = duration
            if inspect.isgeneratorfunction(fn):

                def handler(*args: Any, **kwargs: Any) -> Iterator[Any]:
                    seen["requested"].append(duration(*args, **kwargs))
                    yield from fn(*args, **kwargs)
            else:

                def handler(*args: Any, **kwargs: Any) -> Any:
                    seen["requested"].append(duration(*args, **kwargs))
                    return fn(*args, **kwargs)

            if wraps:
                handler = functools.wraps(fn)(handler)
            handler.zerogpu = None  # type: ignore[attr-defined]
            return handler

        return decorate if task is None else decorate(task)

    module = types.ModuleType("spaces")
    module.GPU = GPU  # type: ignore[attr-defined]
    return module, seen


@pytest.fixture
def zero(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """On ZeroGPU, with the stand-in in place of the real package."""
    module, seen = stand_in_spaces()
    monkeypatch.setitem(sys.modules, "spaces", module)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    return seen


@pytest.fixture
def off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not on ZeroGPU; any use of ``spaces`` fails the test."""
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    poisoned = types.ModuleType("spaces")
    poisoned.__getattr__ = lambda name: pytest.fail(f"spaces.{name} used off ZeroGPU")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spaces", poisoned)


def run_handler(*values: Any) -> tuple[Any, ...]:
    """Run the comparison."""
    return values[: len(NAMES)]


def streaming_handler(*values: Any) -> Iterator[str]:
    """Stream the grid."""
    for method in values[2]:
        yield f"{method} done"


for handler in (run_handler, streaming_handler):
    handler.__signature__ = SIGNATURE  # type: ignore[attr-defined]
    handler.__annotations__ = {"request": gr.Request}  # how Gradio finds the parameter to pass the request in


def values(methods: Any = ("sdedit", "ledits_pp"), steps: Any = 30) -> tuple[Any, ...]:
    return (None, "a house in the snow", list(methods) if isinstance(methods, tuple) else methods, 0, False, steps)


def book(seconds: float, calls: list[tuple[list[str], int]] | None = None) -> Callable[[Any, int], float]:
    def estimate(names: Any, steps: int) -> float:
        if calls is not None:
            calls.append((list(names), steps))
        return seconds

    return estimate


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("false", False), ("0", False), ("yes", False), ("true", True), ("True", True)]
    + [("1", True), ("t", True)],
)
def test_on_zerogpu_reads_the_variable_as_spaces_does(monkeypatch: pytest.MonkeyPatch, value: Any, expected: bool):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    config = pytest.importorskip("spaces.config")  # imported off ZeroGPU: on it, importing patches torch
    assert config.boolean(value) is expected  # the parser behind spaces.config.Config.zero_gpu
    if value is not None:
        monkeypatch.setenv("SPACES_ZERO_GPU", value)
    assert on_zerogpu() is expected


def test_the_real_package_is_effect_free_off_zerogpu(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    spaces = pytest.importorskip("spaces")
    if spaces.config.Config.zero_gpu:
        pytest.skip("running on ZeroGPU")
    assert spaces.GPU(duration=lambda *a: 60)(streaming_handler) is streaming_handler


def test_off_zerogpu_the_handler_is_returned_unchanged(off: None):
    assert gpu_task(run_handler, lambda *a, **k: 40.0) is run_handler
    assert gpu_task(streaming_handler, lambda *a, **k: 40.0) is streaming_handler
    assert inspect.signature(gpu_task(streaming_handler, lambda *a: 1.0)) == SIGNATURE
    assert inspect.isgeneratorfunction(gpu_task(streaming_handler, lambda *a: 1.0))
    settings = Settings()
    assert prepare_backbone_for_zerogpu(settings) is settings


@pytest.mark.parametrize(
    ("expected", "requested"),
    [(40.0, 70), (0.0, MIN_SECONDS), (2.0, MIN_SECONDS), (3.4, 16), (193.3, 300), (1000.0, MAX_SECONDS)]
    + [(float("inf"), MAX_SECONDS), (float("nan"), MAX_SECONDS), (-5.0, MIN_SECONDS)],
)
def test_requested_seconds_is_the_margin_clamped(expected: float, requested: int):
    # 40 × 1.5 + 10 = 70; 3.4 × 1.5 + 10 = 15.1 -> 16 (rounded up); 193.3 × 1.5 + 10 = 299.95 -> 300
    assert requested_seconds(expected) == requested


def test_on_zerogpu_the_wrapper_asks_for_the_estimate_with_its_margin(zero: dict[str, Any], caplog):
    calls: list[tuple[list[str], int]] = []
    duration = duration_for(book(40.0, calls), names_index=2, steps_index=5)
    wrapped = gpu_task(run_handler, duration)
    assert wrapped is not run_handler and hasattr(wrapped, "zerogpu")
    with caplog.at_level(logging.INFO, logger="demos.zerogpu"):
        assert wrapped(*values(), gr.Request(), None) == values()  # the handler itself ran, with the same values
    assert calls == [(["sdedit", "ledits_pp"], 30)]  # the estimate got the names and steps from their positions
    assert zero["requested"] == [70]  # 40 × 1.5 + 10
    assert zero["duration"](*values()) == 70  # the callable spaces holds takes the handler's own arguments
    assert "run_handler asks for 70 s" in caplog.text


def test_the_request_is_clamped(zero: dict[str, Any]):
    gpu_task(run_handler, duration_for(book(1.0), names_index=2, steps_index=5))(*values())
    gpu_task(streaming_handler, duration_for(book(3600.0), names_index=2, steps_index=5))
    assert zero["duration"](*values()) == MAX_SECONDS
    assert zero["requested"] == [MIN_SECONDS]  # 1 × 1.5 + 10 = 11.5 -> 15


def test_duration_reads_empty_and_keyword_values():
    calls: list[tuple[list[str], int]] = []
    duration = duration_for(book(8.0, calls), names_index=2, steps_index=5, default_steps=4)
    assert duration(*values(steps=None)) == 8.0 and calls[-1] == (["sdedit", "ledits_pp"], 4)
    assert duration(*values(steps=12.6)) == 8.0 and calls[-1] == (["sdedit", "ledits_pp"], 13)
    assert duration(methods=["masactrl", 7], steps=20) == 8.0 and calls[-1] == (["masactrl"], 20)
    # Values the handler refuses with its own sentence ask for nothing: the estimate is not consulted.
    count = len(calls)
    assert duration(*values(methods=None)) == 0.0
    assert duration(*values(methods="sdedit")) == 0.0
    assert duration(*values(methods=[])) == 0.0
    assert duration(*values(steps="many")) == 0.0
    assert duration(*values(steps=float("nan"))) == 0.0
    assert len(calls) == count


def test_a_failing_estimate_asks_for_the_most(zero: dict[str, Any]):
    def broken(names: Any, steps: int) -> float:
        raise KeyError(names[0])

    assert duration_for(broken, names_index=2, steps_index=5)(*values()) == float("inf")
    gpu_task(run_handler, duration_for(broken, names_index=2, steps_index=5))(*values())
    gpu_task(run_handler, lambda *a: 1 / 0)(*values())
    assert zero["requested"] == [MAX_SECONDS, MAX_SECONDS]


def test_a_generator_handler_still_streams(zero: dict[str, Any]):
    wrapped = gpu_task(streaming_handler, duration_for(book(40.0), names_index=2, steps_index=5))
    assert inspect.isgeneratorfunction(wrapped)
    assert not inspect.isgeneratorfunction(gpu_task(run_handler, lambda *a: 1.0))
    stream = wrapped(*values(methods=("sdedit", "ledits_pp", "masactrl")))
    assert zero["requested"] == []  # nothing is asked for until Gradio starts the stream
    assert list(stream) == ["sdedit done", "ledits_pp done", "masactrl done"]
    assert zero["requested"] == [70]
    # Gradio decides to stream from the function it is given.
    with gr.Blocks() as app:
        inputs = [gr.Textbox() for _ in NAMES]
        button, out = gr.Button(), gr.Textbox()
        button.click(wrapped, inputs=inputs, outputs=out)
        button.click(gpu_task(run_handler, lambda *a: 1.0), inputs=inputs, outputs=out)
    assert [block_fn.types_generator for block_fn in app.fns.values()] == [True, False]


@pytest.mark.parametrize("wraps", [True, False])
def test_name_doc_and_signature_survive(monkeypatch: pytest.MonkeyPatch, wraps: bool):
    module, _ = stand_in_spaces(wraps=wraps)  # without functools.wraps too: gpu_task copies them itself
    monkeypatch.setitem(sys.modules, "spaces", module)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    for handler in (run_handler, streaming_handler):
        wrapped = gpu_task(handler, lambda *a: 1.0)
        assert wrapped is not handler
        assert inspect.signature(wrapped) == SIGNATURE
        assert list(inspect.signature(wrapped).parameters) == [*NAMES, "request", "progress"]
        assert (wrapped.__name__, wrapped.__doc__) == (handler.__name__, handler.__doc__)
        # Gradio passes the request and the progress tracker where the signature and annotations say.
        request = gr.Request()
        called, progress_at, _, _ = special_args(wrapped, list(values()), request=request)
        assert called[len(NAMES)] is request and progress_at == len(NAMES) + 1
        assert isinstance(called[len(NAMES) + 1], gr.Progress)


def test_a_wrapper_that_stops_streaming_is_refused(monkeypatch: pytest.MonkeyPatch):
    module = types.ModuleType("spaces")
    module.GPU = lambda duration=None: lambda fn: lambda *a, **k: list(fn(*a, **k))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spaces", module)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    with pytest.raises(TypeError, match="would not stream"):
        gpu_task(streaming_handler, lambda *a: 1.0)


class _RecordingFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a stand-in ``spaces`` and records that it was imported."""

    def __init__(self) -> None:
        self.imported = 0

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        return importlib.machinery.ModuleSpec(name, self) if name == "spaces" else None

    def create_module(self, spec: Any) -> types.ModuleType:
        self.imported += 1
        return stand_in_spaces()[0]

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def test_on_zerogpu_spaces_is_imported_before_the_backbone_and_the_device_is_cuda(monkeypatch, caplog):
    finder = _RecordingFinder()
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    settings = Settings(dtype="float16", queue_size=3)
    prepared = prepare_backbone_for_zerogpu(settings)
    assert finder.imported == 1  # the torch patch is in place before Backbone(prepared) runs
    assert prepared.device == "cuda" and settings.device == "auto"
    assert prepared == Settings(dtype="float16", queue_size=3, device="cuda")  # nothing else changed
    with caplog.at_level(logging.WARNING, logger="demos.zerogpu"):
        assert prepare_backbone_for_zerogpu(Settings(device="cpu")).device == "cpu"
    assert "stays on cpu" in caplog.text


def test_spaces_imported_late_is_reported(monkeypatch: pytest.MonkeyPatch, caplog):
    finder = _RecordingFinder()
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    with caplog.at_level(logging.WARNING, logger="demos.zerogpu"):
        gpu_task(run_handler, lambda *a: 1.0)
    assert finder.imported == 1
    assert "prepare_backbone_for_zerogpu" in caplog.text


def test_the_apps_runs_and_sweeps_ask_for_the_chosen_methods_seconds(zero: dict[str, Any], backbone: Any) -> None:
    """The real app on ZeroGPU (stand-in): the text tab's Run handler is a GPU task whose duration is the chosen
    methods' expected seconds (the cost book's estimate) with the margin, and it still streams its cells."""
    from app import build_app
    from demos.api_examples import REQUESTS
    from demos.common import Hub
    from tests.conftest import tiny_settings

    hub = Hub(backbone, tiny_settings())
    app = build_app(hub, hub.settings)
    run = next(fn for fn in app.fns.values() if fn.api_name == "text")
    assert inspect.isgeneratorfunction(run.fn) and run.fn.zerogpu is None  # the stand-in's wrapper
    names = [p for p in inspect.signature(run.fn).parameters][:-2]  # without request and progress
    values = dict.fromkeys(names)
    values.update({**REQUESTS["text"], "methods": ["sdedit", "prompt_to_prompt"], "steps": 2})
    values["image"] = Image.open(ASSETS / "house.png").convert("RGB")
    expected = hub.costs.total(backbone, ["sdedit", "prompt_to_prompt"], 2)
    streamed = list(run.fn(*values.values(), None, None))
    assert zero["requested"][-1] == requested_seconds(expected) == max(MIN_SECONDS, math.ceil(expected * 1.5 + 10))
    assert len(streamed) == 3  # the condition cell, then one grid per method: the wrapper keeps the stream
    sweep = next(fn for fn in app.fns.values() if fn.api_name == "text_sweep")
    assert inspect.isgeneratorfunction(sweep.fn) and sweep.fn.zerogpu is None


def test_preload_addons_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from methods.core.prefetch import addons_of_tabs, preload_names

    monkeypatch.setenv("HUB_PRELOAD_ADDONS", "text, controlnet_seg")
    settings = Settings.from_env([])
    assert settings.preload_addons == ("text", "controlnet_seg")
    names = preload_names(settings.preload_addons)
    assert names == [*addons_of_tabs(["text"]), "controlnet_seg"] and "instruct_pix2pix_unet" in names
    assert preload_names(["all"]) == addons_of_tabs(None)
    with pytest.raises(ValueError, match="unknown 'nope'"):
        preload_names(["nope"])


def test_a_workers_input_error_reaches_the_visitor_as_a_sentence(zero: dict[str, Any]) -> None:
    from methods.core.spec import InputError

    def handler(*values: Any) -> Iterator[Any]:
        yield 1
        raise InputError("Please upload the source image.")

    task = gpu_task(handler, lambda *args, **kwargs: 1.0)
    stream = task()
    assert next(stream) == 1
    with pytest.raises(gr.Error, match="Please upload the source image."):
        next(stream)
