"""Up-front cost estimates: what each method declares it costs, the measured timings book, the default selection."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from diffusers import RePaintScheduler
from PIL import Image

import methods  # noqa: F401  (registers every method)
from methods.core.backbone import Backbone
from methods.core.costs import (
    GRADIENT_STEP,
    LORA_STEP,
    SECONDS_PER_UNIT,
    CostBook,
    default_selection,
    is_slow,
    method_cost,
    short_duration,
)
from methods.core.registry import get_method, list_methods
from methods.core.runner import run_method
from methods.core.spec import Condition, EditInputs, Method, Paper, Strategy
from tests.conftest import make_photo

STEPS = (1, 2, 3, 4, 5, 8, 13, 21, 30, 50)


def fake_backbone(device: str = "cuda", name: str = "sd15", dtype: torch.dtype = torch.float16) -> SimpleNamespace:
    return SimpleNamespace(
        profile=SimpleNamespace(name=name, is_tiny=name == "tiny"), device=torch.device(device), dtype=dtype
    )


def defaults(name: str) -> dict[str, Any]:
    return get_method(name).resolve_params(None)


def ok_record(method: str, seconds: float, steps: int = 30, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A runner record of a successful run (only the fields the book reads matter)."""
    resolved = get_method(method).resolve_params(params)
    return {"method": method, "status": "ok", "seconds": seconds, "steps": steps, "params": resolved, "message": ""}


# -- what the methods declare ---------------------------------------------------------------------------------------
class _Plain(Method):  # not registered: the base class's estimate
    name = "plain_for_costs"
    label = "Plain"
    condition = Condition.TEXT
    strategy = Strategy.TRAINING_FREE
    paper = Paper("-", 2024, "-")


def test_a_plain_sampler_costs_two_evaluations_a_step() -> None:
    assert _Plain.cost(30, {}) == 60.0
    assert get_method("gligen").cost(30, defaults("gligen")) == 60.0  # no override: CFG, one pass
    assert get_method("paint_by_example").cost(7, defaults("paint_by_example")) == 14.0


def test_sdedit_denoises_strength_times_the_steps() -> None:
    sdedit = get_method("sdedit")
    assert sdedit.cost(30, {"strength": 0.6}) == 2 * 18
    assert sdedit.cost(30, {"strength": 1.0}) == 60
    assert sdedit.cost(10, {"strength": 0.25}) == 2 * 2  # int(2.5), as diffusers counts
    assert sdedit.cost(10, {"strength": 0.05}) == 2  # at least one step: an estimate never refuses


def test_branch_editors_count_the_inversion_and_four_rows_a_step() -> None:
    p2p = get_method("prompt_to_prompt")
    assert p2p.cost(30, {**defaults("prompt_to_prompt"), "inversion": "ddim"}) == 30 + 4 * 30
    assert p2p.cost(30, {**defaults("prompt_to_prompt"), "inversion": "direct"}) == 30 + 2 * 30 + 4 * 30
    null_text = get_method("null_text_p2p")
    per_step = 2 + GRADIENT_STEP * 5  # cond + 5 forward + backward + the final uncond
    assert null_text.cost(30, defaults("null_text_p2p")) == pytest.approx(30 + 30 * per_step + 4 * 30)
    assert get_method("masactrl").cost(20, defaults("masactrl")) == 20 + 80


@pytest.mark.parametrize(("steps", "jump", "resamples"), [(1, 5, 3), (2, 5, 3), (7, 5, 3), (30, 5, 3), (50, 10, 4)])
def test_repaint_counts_the_reverse_steps_of_the_real_schedule(steps: int, jump: int, resamples: int) -> None:
    scheduler = RePaintScheduler()
    used = max(1, min(jump, steps - 1))
    scheduler.set_timesteps(steps, jump_length=used, jump_n_sample=resamples)
    timesteps = [int(t) for t in scheduler.timesteps]
    reverse = sum(t < before for t, before in zip(timesteps, [timesteps[0] + 1, *timesteps[:-1]], strict=True))
    params = {**defaults("repaint"), "jump_length": jump, "resamples": resamples}
    assert get_method("repaint").cost(steps, params) == 2 * reverse


def test_fine_tuning_counts_its_own_step_params() -> None:
    imagic = get_method("imagic")
    params = {**defaults("imagic"), "embedding_steps": 10, "lora_steps": 20, "timesteps_per_step": 2}
    assert imagic.cost(30, params) == pytest.approx(2 * (GRADIENT_STEP * 10 + LORA_STEP * 20) + 24 + 60)
    drag, lora = get_method("drag_diffusion"), get_method("drag_diffusion_lora")
    lora_params = defaults("drag_diffusion_lora")
    extra = lora.cost(30, lora_params) - drag.cost(30, {p.name: lora_params[p.name] for p in drag.params})
    assert extra == pytest.approx(LORA_STEP * lora_params["lora_steps"] + 16)
    more = {**lora_params, "lora_steps": lora_params["lora_steps"] + 10}
    assert lora.cost(30, more) - lora.cost(30, lora_params) == pytest.approx(10 * LORA_STEP)


def test_controlnets_and_t_skip() -> None:
    assert get_method("multi_controlnet").cost(30, defaults("multi_controlnet")) == 2 * 30 * (1 + 0.5 * 2)
    half_window = {**defaults("controlnet_seg"), "control_end": 0.5}
    assert get_method("controlnet_seg").cost(30, half_window) == 2 * 30 * (1 + 0.5 * 0.5)
    ddpm = get_method("ddpm_inversion_dit")
    assert ddpm.cost(50, {**defaults("ddpm_inversion_dit"), "skip": 0.36}) == 50 + 2 * (50 - 18)
    assert ddpm.cost(50, {**defaults("ddpm_inversion_dit"), "skip": 0.0, "guidance": 1.0}) == 50 + 50


def test_slow_methods() -> None:
    for name in ("imagic", "null_text_p2p", "boxdiff", "sde_drag"):
        assert is_slow(get_method(name)), name
    for name in ("sdedit", "gligen", "controlnet_seg", "prompt_to_prompt", "region_drag"):
        assert not is_slow(get_method(name)), name


@pytest.mark.parametrize("method_cls", list_methods(), ids=lambda m: m.name)
def test_every_cost_is_positive_and_never_falls_with_more_steps(method_cls: type[Method]) -> None:
    params = method_cls.resolve_params(None)
    costs = [method_cls.cost(steps, params) for steps in STEPS]
    assert all(isinstance(c, float | int) and not isinstance(c, bool) for c in costs), costs
    assert all(math.isfinite(c) and c > 0 for c in costs), costs
    assert all(later >= earlier for earlier, later in zip(costs, costs[1:], strict=False)), costs


# -- the counts are the UNet's own: run a few methods on the tiny backbone and count batch rows -------------------
@contextmanager
def counted_rows(unet: torch.nn.Module) -> Iterator[list[int]]:
    rows: list[int] = []

    def count(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        rows.append(int((args[0] if args else kwargs["sample"]).shape[0]))

    handle = unet.register_forward_pre_hook(count, with_kwargs=True)
    try:
        yield rows
    finally:
        handle.remove()


def _mask(size: int) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return mask


RUNS = [  # (method, condition, params, steps): prompts unique to this file, so no other test's inversion is reused
    ("sdedit", Condition.TEXT, {"strength": 0.5}, 4),
    ("prompt_to_prompt", Condition.TEXT, {"inversion": "ddim"}, 3),
    ("repaint", Condition.MASK, {"jump_length": 2, "resamples": 2}, 4),
    ("diffedit", Condition.TEXT, {"num_maps_per_mask": 2, "inpaint_strength": 0.5}, 4),
]


@pytest.mark.parametrize(("name", "condition", "params", "steps"), RUNS, ids=[r[0] for r in RUNS])
def test_declared_cost_is_the_unet_rows_a_run_makes(
    backbone: Backbone, tmp_path: Path, name: str, condition: Condition, params: dict[str, Any], steps: int
) -> None:
    photo = make_photo(backbone.size, seed=97)
    inputs = EditInputs(
        image=photo,
        prompt="a cost estimate house in snow",
        source_prompt="a cost estimate house",
        mask=_mask(backbone.size),
        steps=steps,
    )
    with counted_rows(backbone.unet) as rows:
        record, _ = run_method(backbone, condition, name, inputs, 5, params)
    assert record["status"] == "ok", record["message"]
    cost = get_method(name).cost(steps, record["params"])
    assert sum(rows) == cost
    book = CostBook(tmp_path / "timings.json")  # the runner's record is what the book learns from
    book.observe(backbone, record)
    assert book.measured(backbone, name) == [record["seconds"] / cost]


# -- the timings book -------------------------------------------------------------------------------------------
def test_observed_seconds_scale_with_the_cost(tmp_path: Path) -> None:
    book, gpu = CostBook(tmp_path / "timings.json"), fake_backbone()
    book.observe(gpu, ok_record("sdedit", 9.0, 30, {"strength": 0.6}))  # 36 units: 0.25 s each
    assert book.estimate(gpu, "sdedit", 30, {"strength": 0.6}) == (9.0, "measured")
    assert book.estimate(gpu, "sdedit", 30, {"strength": 1.0}) == (15.0, "measured")  # 60 units
    assert book.estimate(gpu, "sdedit", 50) == (0.25 * 2 * 30, "measured")  # defaults: int(50 x 0.6) steps
    assert book.label(gpu, "sdedit", 30, {"strength": 1.0}) == "~15 s"
    other = fake_backbone(dtype=torch.float32)  # another dtype is another key: nothing measured there
    declared = SECONDS_PER_UNIT[(False, "cuda", "float32")]
    assert book.estimate(other, "sdedit", 30, {"strength": 1.0}) == (declared * 60, "estimated")


def test_the_median_of_the_last_five_runs(tmp_path: Path) -> None:
    book, gpu = CostBook(tmp_path / "timings.json"), fake_backbone()
    for per_unit in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0):
        book.observe(gpu, ok_record("gligen", per_unit * 60))
    assert book.measured(gpu, "gligen") == [3.0, 4.0, 5.0, 6.0, 100.0]
    assert book.estimate(gpu, "gligen", 30) == (5.0 * 60, "measured")


def test_failed_skipped_and_stopped_runs_are_ignored(tmp_path: Path) -> None:
    book, gpu = CostBook(tmp_path / "timings.json"), fake_backbone()
    for status in ("error", "skipped", "stopped"):
        book.observe(gpu, {**ok_record("gligen", 1.0), "status": status})
    book.observe(gpu, {"method": "no_such_method", "status": "ok", "seconds": 1.0, "steps": 30})
    assert book.measured(gpu, "gligen") == []
    assert not (tmp_path / "timings.json").exists()


def test_an_unmeasured_method_takes_the_median_of_the_others(tmp_path: Path) -> None:
    book, gpu = CostBook(tmp_path / "timings.json"), fake_backbone()
    book.observe(gpu, ok_record("sdedit", 0.25 * 36))  # 0.25 s a unit
    book.observe(gpu, ok_record("gligen", 0.5 * 60))  # 0.5
    book.observe(gpu, ok_record("gligen", 0.5 * 60))
    book.observe(gpu, ok_record("ledits_pp", 1.0 * 120))  # 1.0
    assert book.estimate(gpu, "masactrl", 30) == (0.5 * 150, "estimated")
    assert book.total(gpu, ["sdedit", "gligen", "masactrl"], 30) == 9.0 + 30.0 + 75.0


def test_nothing_measured_uses_the_declared_figure(backbone: Backbone, tmp_path: Path) -> None:
    book = CostBook(tmp_path / "timings.json")
    seconds, source = book.estimate(backbone, "gligen", 30)  # the tiny backbone on the CPU, float32
    assert source == "estimated"
    assert seconds == pytest.approx(SECONDS_PER_UNIT[(True, "cpu", "float32")] * 60)
    gpu = fake_backbone()
    assert book.estimate(gpu, "imagic", 30) == (0.02 * method_cost(get_method("imagic"), 30), "estimated")
    params = {"gligen": {"gligen_scheduled_sampling_beta": 0.5}}
    assert book.total(gpu, ["gligen", "sdedit"], 30, params) == pytest.approx(0.02 * (60 + 36))


def test_timings_persist_across_books(tmp_path: Path) -> None:
    path, gpu = tmp_path / "runs" / "timings.json", fake_backbone()
    CostBook(path).observe(gpu, ok_record("sdedit", 9.0, 30, {"strength": 0.6}))
    data = json.loads(path.read_text())
    assert data == {"sd15/cuda/float16": {"sdedit": [0.25]}}
    assert CostBook(path).estimate(gpu, "sdedit", 30, {"strength": 1.0}) == (15.0, "measured")
    assert [p.name for p in path.parent.iterdir()] == ["timings.json"]  # no temporary file left behind


def test_a_book_sees_what_another_process_wrote(tmp_path: Path) -> None:
    # On ZeroGPU the Runs (and their observe) execute in worker processes; the main process estimates durations.
    path, gpu = tmp_path / "timings.json", fake_backbone()
    main, worker = CostBook(path), CostBook(path)
    assert main.estimate(gpu, "sdedit", 30)[1] == "estimated"
    worker.observe(gpu, ok_record("sdedit", 9.0, 30, {"strength": 0.6}))
    assert main.estimate(gpu, "sdedit", 30, {"strength": 1.0}) == (15.0, "measured")
    main.observe(gpu, ok_record("sdedit", 18.0, 30, {"strength": 0.6}))  # appends to the worker's run, not over it
    assert CostBook(path).measured(gpu, "sdedit") == [0.25, 0.5]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"sd15/cuda/float16": {"sdedit": "fast"}}', ""])
def test_an_unreadable_file_starts_an_empty_book(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path, gpu = tmp_path / "timings.json", fake_backbone()
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="methods.core.costs"):
        book = CostBook(path)
    assert "unreadable" in caplog.text
    assert book.estimate(gpu, "gligen", 30)[1] == "estimated"
    book.observe(gpu, ok_record("gligen", 30.0))
    assert CostBook(path).measured(gpu, "gligen") == [0.5]  # the next write replaced it with a valid file


def test_concurrent_observations_lose_nothing(tmp_path: Path) -> None:
    path, gpu = tmp_path / "timings.json", fake_backbone()
    book = CostBook(path)
    names = ["sdedit", "gligen", "sd_inpaint", "blended_latent", "paint_by_example", "ip_adapter", "t2i_adapter_seg"]
    names.append("instruct_pix2pix")
    start = threading.Barrier(len(names))

    def observe(name: str) -> None:
        start.wait()
        cost = method_cost(get_method(name), 30)
        for run in range(1, 6):
            book.observe(gpu, ok_record(name, run * cost))

    threads = [threading.Thread(target=observe, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reread = CostBook(path)
    for name in names:
        assert book.measured(gpu, name) == [1.0, 2.0, 3.0, 4.0, 5.0], name
        assert reread.measured(gpu, name) == [1.0, 2.0, 3.0, 4.0, 5.0], name


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "<1 s"), (1.0, "~1 s"), (12.4, "~12 s"), (59.4, "~59 s"), (59.6, "~1 min"), (170, "~3 min")]
    + [(5400, "~1.5 h")],
)
def test_short_duration(seconds: float, text: str) -> None:
    assert short_duration(seconds) == text


# -- the default selection -----------------------------------------------------------------------------------------
def test_slow_methods_are_off_by_default_on_a_cpu(backbone: Backbone) -> None:
    text = list_methods(Condition.TEXT)
    chosen = default_selection(backbone, text, 30)
    assert chosen == [m.name for m in text if not is_slow(m, 30)]
    assert "sdedit" in chosen and "prompt_to_prompt" in chosen
    assert "imagic" not in chosen and "null_text_p2p" not in chosen
    assert default_selection(fake_backbone(), text, 30) == [m.name for m in text]  # on a GPU: all of them


def test_the_selection_is_never_empty(backbone: Backbone) -> None:
    slow = [get_method("imagic"), get_method("null_text_p2p")]
    assert all(is_slow(m, 30) for m in slow)
    cheapest = min(slow, key=lambda m: method_cost(m, 30)).name
    assert default_selection(backbone, slow, 30) == [cheapest]
    assert default_selection(fake_backbone("cpu", "sd15", torch.float32), slow, 30) == [cheapest]
