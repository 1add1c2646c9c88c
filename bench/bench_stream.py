"""Time to the first cell against the whole grid: one tab's Run through its streaming API endpoint.

    python bench/bench_stream.py [--backbone tiny|sd15] [--device cpu|cuda] [--tab text] [--steps 4]
        [--methods NAME ...] [--repeats 3] [--sweep] [--out bench/results]

Starts the app on the backbone (as ``app.py`` does, on a free local port), then submits the tab's example request
(``demos/api_examples.py``) with every method of the tab (or --methods) through ``gradio_client`` and records when
each partial grid arrives: the first cell, each further one, the whole grid (the source photo's cell comes first,
before any method). Before the grid streamed, the first picture a visitor saw came with the whole grid. With
--sweep it also times a 2×3 sweep (seeds 0, 1, 2 × the first two methods) against the six single runs it is made
of. The first request warms up (add-on loads) and is not counted; one JSON per run goes to --out (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

import methods  # noqa: E402, F401
from demos.api_examples import REQUESTS  # noqa: E402
from methods.core.backbone import Backbone  # noqa: E402
from methods.core.registry import list_methods  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def streamed_run(client: Client, tab: str, names: list[str], steps: int, seed: int) -> dict[str, Any]:
    """Seconds from submit to each partial grid (one per finished method) and to the whole one."""
    started = time.perf_counter()
    job = client.submit(**REQUESTS[tab], methods=names, steps=steps, seed=seed, api_name=f"/{tab}")
    arrivals, records, seen = [], [], 0
    while not job.done() or len(job.outputs()) > seen:
        outputs = job.outputs()
        while seen < len(outputs):
            arrivals.append(round(time.perf_counter() - started, 3))
            records.append(len(outputs[seen][1]["data"] or []))
            seen += 1
        time.sleep(0.005)
    final = job.result()
    whole = round(time.perf_counter() - started, 3)
    statuses = [row[1] for row in final[1]["data"]]
    first = next(t for t, n in zip(arrivals, records, strict=True) if n > 0)  # the first method's cell
    return {
        "source_shown": arrivals[0],
        "first_cell": first,
        "arrivals": arrivals,
        "whole": whole,
        "statuses": statuses,
    }


def sweep_against_singles(client: Client, tab: str, names: list[str], steps: int) -> dict[str, Any]:
    started = time.perf_counter()
    client.predict(
        **REQUESTS[tab],
        methods=names[:2],
        steps=steps,
        x_axis="seed",
        x_values="0, 1, 2",
        y_axis="method",
        y_values=", ".join(names[:2]),
        api_name=f"/{tab}_sweep",
    )
    sweep = time.perf_counter() - started
    started = time.perf_counter()
    for name in names[:2]:
        for seed in range(3):
            client.predict(**REQUESTS[tab], methods=[name], steps=steps, seed=seed, api_name=f"/{tab}")
    return {"sweep_seconds": round(sweep, 3), "six_single_runs_seconds": round(time.perf_counter() - started, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tab", default="text")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--methods", nargs="*")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()
    settings = Settings(backbone=args.backbone, device=args.device)
    backbone = Backbone(settings)
    names = args.methods or [m.name for m in list_methods(args.tab)]
    from tests.helpers import served

    with served(backbone, settings) as (url, _):
        client = Client(url, verbose=False)
        streamed_run(client, args.tab, names, args.steps, seed=0)  # warm-up: add-on loads, first calls
        runs = [streamed_run(client, args.tab, names, args.steps, seed=i) for i in range(args.repeats)]
        for run in runs:
            first, whole, source = run["first_cell"], run["whole"], run["source_shown"]
            print(f"source {source:.2f} s · first cell {first:.2f} s · whole grid {whole:.2f} s · {run['arrivals']}")
        result: dict[str, Any] = {
            "backbone": backbone.profile.name,
            "device": backbone.device.type,
            "threads": torch.get_num_threads(),
            "tab": args.tab,
            "methods": names,
            "steps": args.steps,
            "runs": runs,
            "median_first_cell": statistics.median(r["first_cell"] for r in runs),
            "median_whole": statistics.median(r["whole"] for r in runs),
        }
        print(
            f"{args.tab}, {len(names)} methods, {args.steps} steps, median of {len(runs)}: first cell "
            f"{result['median_first_cell']:.2f} s, whole grid {result['median_whole']:.2f} s"
        )
        if args.sweep:
            result["sweep"] = sweep_against_singles(client, args.tab, names, args.steps)
            print(f"2×3 sweep {result['sweep']}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"stream_{args.tab}_{backbone.profile.name}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
