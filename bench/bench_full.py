"""Every method at the real model's shape: seconds, UNet calls, memory, hub overhead, and the sampler's speed-ups.

    python bench/bench_full.py [--backbone sd15] [--device auto|cpu|cuda] [--dtype auto|float16|float32]
        [--steps 2] [--repeats 3] [--methods NAME ...] [--addon-budget-gb 8] [--speedups] [--out bench/results]
        [--skip-endpoints [--addon-sizes]]

Meant for the full-size profile (``python -m methods build-full``, then ``HF_HUB_OFFLINE=1``; or the real weights).
It starts the app in this process and, for every method, calls its tab's API endpoint (gradio_client, the request of
``demos/api_examples.py``) at --steps with the method's cheapest settings (every integer parameter at its minimum),
printing per method: status, seconds (first call, add-on loads included), steps per second, UNet calls per step
(and the batch they carry), and peak memory (CUDA allocated, else the process RSS). Then:

* hub vs direct: SDEdit through ``run_comparison`` against ``StableDiffusionImg2ImgPipeline`` called by hand on the
  same modules and seed (median of --repeats each, alternating); the ratio, whether the images are identical, and
  the hub's own seconds outside the diffusers call in the same runs (a figure that the machine's noise, which moves
  both medians by several per cent on a shared CPU, does not swamp);
* memory: the resident bytes of the base plus every add-on once (what the hub keeps) against the sum over methods
  of a naive per-method pipeline (its own copy of the base plus its add-ons), as a ratio;
* --speedups: the plain text-to-image sampler with the classic attention processor, with SDPA, SDPA +
  channels_last, and SDPA + channels_last + ``torch.compile`` of the UNet (median seconds, speed-up vs classic).

--skip-endpoints leaves the per-method runs out; with --addon-sizes it still loads every add-on once (one after the
other, within the budget) so the memory ratio can be given. One JSON per run goes to --out (git-ignored).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

import methods  # noqa: E402, F401
from methods.core.backbone import Backbone, module_bytes  # noqa: E402
from methods.core.registry import list_methods  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DENOISERS = {"UNet2DConditionModel", "DiTTransformer2DModel"}


class Calls:
    """Counts denoiser forward calls (and the batch they carry) through a global module hook."""

    def __init__(self) -> None:
        self.calls = self.batch = self.controlnet = 0
        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: tuple, kwargs: dict | None = None) -> None:
        name = type(module).__name__
        if name in DENOISERS:
            self.calls += 1
            sample = args[0] if args else None
            self.batch += int(sample.shape[0]) if isinstance(sample, torch.Tensor) else 0
        elif name == "ControlNetModel":
            self.controlnet += 1

    def reset(self) -> None:
        self.calls = self.batch = self.controlnet = 0


def peak_memory(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return psutil.Process().memory_info().rss / 2**30


def cheapest(method: Any) -> dict[str, Any]:
    """Every integer parameter at its minimum (iterations, inner steps, training steps), as endpoint arguments."""
    ints = [p for p in method.params if p.kind == "int" and p.minimum is not None]
    return {f"{method.name}__{p.name}": int(p.minimum) for p in ints}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    sync(device)
    started = time.perf_counter()
    value = fn()
    sync(device)
    return time.perf_counter() - started, value


def run_endpoints(backbone: Backbone, settings: Settings, steps: int, names: list[str] | None, calls: Calls) -> list:
    from gradio_client import Client

    from app import build_app, launch_options
    from demos.api_examples import REQUESTS
    from demos.common import Hub

    app = build_app(Hub(backbone, settings), settings)
    _, url, _ = app.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", **launch_options(settings))
    client = Client(url, verbose=False)
    rows = []
    try:
        for method in list_methods():
            if names and method.name not in names:
                continue
            condition = method.condition.value
            calls.reset()
            if backbone.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            try:
                _, records, *_ = client.predict(
                    **REQUESTS[condition],
                    methods=[method.name],
                    steps=steps,
                    seed=0,
                    **cheapest(method),
                    api_name=f"/{condition}",
                )
                _, status, seconds, *rest = records["data"][0]
                message = rest[-1] if rest else ""
            except Exception as error:  # noqa: BLE001 - report it, go on with the next method
                status, seconds, message = "error", time.perf_counter() - started, str(error)[:300]
            row = {
                "tab": condition,
                "method": method.name,
                "status": status,
                "seconds": float(seconds),
                "request_seconds": round(time.perf_counter() - started, 2),
                "steps_per_second": round(steps / float(seconds), 3) if float(seconds) > 0 else None,
                "unet_calls_per_step": round(calls.calls / steps, 2),
                "unet_batch_per_step": round(calls.batch / steps, 2),
                "controlnet_calls_per_step": round(calls.controlnet / steps, 2),
                "peak_gib": round(peak_memory(backbone.device), 2),
                "params": cheapest(method),
                "message": message,
            }
            rows.append(row)
            print(
                f"{condition:<13} {method.name:<22} {status:<7} {row['seconds']:>8.1f} s "
                f"{row['request_seconds']:>8.1f} s "
                f"{row['unet_calls_per_step']:>6.1f} ({row['unet_batch_per_step']:>5.1f}) {row['peak_gib']:>7.2f} GiB"
                + (f"  {message}" if status != "ok" else ""),
                flush=True,
            )
    finally:
        app.close()
    return rows


def hub_vs_direct(backbone: Backbone, steps: int, repeats: int) -> dict[str, Any]:
    from diffusers import StableDiffusionImg2ImgPipeline

    from methods.core.examples import example_inputs
    from methods.core.runner import run_comparison
    from tests.helpers import direct_components

    inputs = example_inputs("text", backbone, steps=steps)
    strength = 0.6
    pipe = StableDiffusionImg2ImgPipeline(**direct_components(backbone))  # by hand, over the same modules
    pipe.set_progress_bar_config(disable=True)

    inside: list[float] = []  # seconds spent inside the diffusers call during each hub run
    pipeline_call = StableDiffusionImg2ImgPipeline.__call__

    @functools.wraps(pipeline_call)  # denoise() reads the call's signature
    def counted_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        seconds, value = timed(lambda: pipeline_call(self, *args, **kwargs), backbone.device)
        inside.append(seconds)
        return value

    def hub() -> Any:
        StableDiffusionImg2ImgPipeline.__call__ = counted_call
        try:
            comparison = run_comparison(
                backbone, "text", ["sdedit"], inputs, 0, params={"sdedit": {"strength": strength}}
            )
        finally:
            StableDiffusionImg2ImgPipeline.__call__ = pipeline_call
        return comparison.result("sdedit")

    def direct() -> Any:
        generator = torch.Generator(device=backbone.device).manual_seed(0)
        return pipe(
            prompt=inputs.prompt,
            image=inputs.image,
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=inputs.guidance,
            generator=generator,
        ).images[0]

    hub(), direct()  # warm-up
    hub_times, direct_times, outside = [], [], []
    for _ in range(repeats):
        inside.clear()
        seconds, hub_image = timed(hub, backbone.device)
        hub_times.append(seconds)
        outside.append(seconds - sum(inside))
        seconds, direct_image = timed(direct, backbone.device)
        direct_times.append(seconds)
    ratio = statistics.median(hub_times) / statistics.median(direct_times)
    same = bool(np.array_equal(np.asarray(hub_image), np.asarray(direct_image)))
    print(
        f"hub vs direct (SDEdit, {steps} steps): hub {statistics.median(hub_times):.2f} s, direct "
        f"{statistics.median(direct_times):.2f} s, ratio {ratio:.3f} (target <= 1.03), identical images: {same}; "
        f"the hub's own time outside the diffusers call {statistics.median(outside):.3f} s "
        f"({statistics.median(outside) / statistics.median(hub_times):.1%} of its run)"
    )
    return {
        "hub_seconds": hub_times,
        "direct_seconds": direct_times,
        "hub_outside_pipeline_seconds": outside,
        "ratio": round(ratio, 4),
        "identical": same,
    }


def memory_ratio(backbone: Backbone, sizes: dict[str, int], names: list[str] | None) -> dict[str, Any]:
    base = sum(module_bytes(m) for m in (backbone.unet, backbone.vae, backbone.text_encoder))
    chosen = [m for m in list_methods() if not names or m.name in names]
    naive = sum(base + sum(sizes.get(a, 0) for a in m.addons) for m in chosen)
    used = {a for m in chosen for a in m.addons}
    shared = base + sum(sizes.get(a, 0) for a in used)
    missing = sorted(a for a in used if a not in sizes)
    print(
        f"memory: base {base / 2**30:.2f} GiB; base + every add-on once {shared / 2**30:.2f} GiB; naive per-method "
        f"pipelines {naive / 2**30:.2f} GiB over {len(chosen)} methods; ratio {shared / naive:.3f}"
        + (f" (add-ons never loaded: {', '.join(missing)})" if missing else "")
    )
    return {"base_bytes": base, "shared_bytes": shared, "naive_bytes": naive, "ratio": round(shared / naive, 4)}


def speedups(backbone: Backbone, steps: int, repeats: int) -> dict[str, Any]:
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    pipe = backbone.pipeline(StableDiffusionPipeline)
    unet = backbone.unet
    saved = unet.attn_processors

    def plain() -> Any:
        generator = torch.Generator(device=backbone.device).manual_seed(0)
        size = backbone.size
        return pipe("a house", num_inference_steps=steps, generator=generator, height=size, width=size).images[0]

    def median_of(setup: Callable[[], None]) -> float:
        setup()
        plain()  # warm-up (compiles, for torch.compile)
        return statistics.median(timed(plain, backbone.device)[0] for _ in range(repeats))

    rows: dict[str, float] = {}
    try:
        rows["classic attention"] = median_of(lambda: unet.set_attn_processor(AttnProcessor()))
        rows["SDPA"] = median_of(lambda: unet.set_attn_processor(AttnProcessor2_0()))
        rows["SDPA + channels_last"] = median_of(lambda: unet.to(memory_format=torch.channels_last))
        compiled = torch.compile(unet)
        rows["SDPA + channels_last + compile"] = median_of(lambda: setattr(pipe, "unet", compiled))
    finally:
        pipe.unet = unet
        unet.to(memory_format=torch.contiguous_format)
        unet.set_attn_processor(saved)
    base = rows["classic attention"]
    for name, seconds in rows.items():
        print(f"plain sampler, {name:<32} {seconds:>8.2f} s  {steps / seconds:>6.2f} it/s  x{base / seconds:.2f}")
    return {name: {"seconds": s, "speedup": round(base / s, 3)} for name, s in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="sd15")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--addon-budget-gb", type=float, default=8.0)
    parser.add_argument("--speedups", action="store_true")
    parser.add_argument("--skip-endpoints", action="store_true")
    parser.add_argument(
        "--addon-sizes",
        action="store_true",
        help="without the endpoint runs: load each add-on once for the memory ratio",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()

    settings = Settings(
        backbone=args.backbone,
        device=args.device,
        dtype=args.dtype,
        addon_budget_gb=args.addon_budget_gb,
        max_request_seconds=3600.0,
    )
    started = time.perf_counter()
    backbone = Backbone(settings)
    print(
        f"torch {torch.__version__} · {torch.get_num_threads()} threads · backbone {backbone.profile.name} "
        f"({backbone.profile.location}) on {backbone.device}/{str(backbone.dtype).replace('torch.', '')} · "
        f"{backbone.size} px · loaded in {time.perf_counter() - started:.1f} s · {peak_memory(backbone.device):.2f} GiB"
    )
    if backbone.device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name()}")
    result: dict[str, Any] = {
        "backbone": backbone.profile.name,
        "location": backbone.profile.location,
        "device": str(backbone.device),
        "dtype": str(backbone.dtype),
        "size": backbone.size,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
    }
    calls = Calls()
    sizes: dict[str, int] = {}
    original_addon = backbone.addon

    def addon(name: str) -> Any:  # remember each add-on's resident size as it is loaded
        value = original_addon(name)
        sizes.setdefault(name, module_bytes(value))
        return value

    backbone.addon = addon  # type: ignore[method-assign]
    if not args.skip_endpoints:
        print(f"\n{'tab':<13} {'method':<22} {'status':<7} {'method s':>10} {'request':>10} {'UNet/step (batch)':>19} "
              f"{'peak':>10}")  # fmt: skip
        result["methods"] = run_endpoints(backbone, settings, args.steps, args.methods, calls)
        total = sum(r["request_seconds"] for r in result["methods"])
        ok = sum(r["status"] == "ok" for r in result["methods"])
        print(f"{ok}/{len(result['methods'])} methods ok, {total:.0f} s in all")
        result["memory"] = memory_ratio(backbone, sizes, args.methods)
        result["addon_bytes"] = sizes
    if args.skip_endpoints and args.addon_sizes:
        for name in dict.fromkeys(
            a for m in list_methods() if not args.methods or m.name in args.methods for a in m.addons
        ):
            backbone.addon(name)  # loaded one after the other; the budget evicts the older ones
        result["memory"] = memory_ratio(backbone, sizes, args.methods)
        result["addon_bytes"] = sizes
    calls.handle.remove()
    result["hub_vs_direct"] = hub_vs_direct(backbone, args.steps, args.repeats)
    if args.speedups:
        result["speedups"] = speedups(backbone, args.steps, args.repeats)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"full-{backbone.profile.name}-{backbone.device.type}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
