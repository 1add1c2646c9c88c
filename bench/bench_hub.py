"""Load the backbone, run every registered method, print memory and per-method seconds.

    python bench/bench_hub.py [--backbone tiny|sd15|auto|<id>] [--steps N] [--repeats N] [--device cpu|cuda]

Resident memory (RSS) is printed after the base alone and after all methods (their add-ons loaded);
on CUDA also allocated / peak GPU memory. Seconds are the median of --repeats runs after one warm-up
run per method (the warm-up includes loading its add-ons, reported separately).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
import torch  # noqa: E402

import methods  # noqa: E402, F401
from methods.core.backbone import Backbone, module_bytes  # noqa: E402
from methods.core.examples import example_inputs  # noqa: E402
from methods.core.registry import list_methods  # noqa: E402
from methods.core.runner import run_comparison  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402


def memory(backbone: Backbone) -> str:
    rss = psutil.Process().memory_info().rss / 2**30
    text = f"RSS {rss:.2f} GiB"
    if backbone.device.type == "cuda":
        text += (
            f", CUDA allocated {torch.cuda.memory_allocated() / 2**30:.2f} GiB,"
            f" peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--methods", nargs="*", default=None, help="subset of method names (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus")
    print(f"before loading: {memory_placeholder()}")
    started = time.perf_counter()
    backbone = Backbone(Settings(backbone=args.backbone, device=args.device))
    print(
        f"backbone {backbone.profile.name} ({backbone.profile.location}) on {backbone.device}/{backbone.dtype}, "
        f"{backbone.size}px, loaded in {time.perf_counter() - started:.1f}s"
    )
    print(f"after the base alone: {memory(backbone)}")

    rows = []
    for method in list_methods():
        if args.methods and method.name not in args.methods:
            continue
        inputs = example_inputs(method.condition, backbone, steps=args.steps)
        warm = run_comparison(backbone, method.condition, [method.name], inputs, seed=0)
        status = warm.records[0]["status"]
        times = []
        for repeat in range(args.repeats if status == "ok" else 0):
            comparison = run_comparison(backbone, method.condition, [method.name], inputs, seed=repeat)
            times.append(comparison.records[0]["seconds"])
        median = statistics.median(times) if times else float("nan")
        rows.append((method.condition.value, method.name, status, warm.records[0]["seconds"], median))
        if status != "ok":
            print(f"  {method.name}: {status}: {warm.records[0]['message']}")
    print(f"after all methods: {memory(backbone)}")
    addon_total = sum(module_bytes(backbone.addon(n)) for n in backbone.loaded_addons())
    print(f"add-ons loaded: {', '.join(backbone.loaded_addons())} ({addon_total / 2**20:.0f} MiB of weights)")
    print(f"\n{'condition':<13} {'method':<22} {'status':<7} {'first run s':>11} {'median s':>9}  (steps={args.steps})")
    for condition, name, status, first, median in rows:
        print(f"{condition:<13} {name:<22} {status:<7} {first:>11.2f} {median:>9.2f}")


def memory_placeholder() -> str:
    return f"RSS {psutil.Process().memory_info().rss / 2**30:.2f} GiB"


if __name__ == "__main__":
    main()
