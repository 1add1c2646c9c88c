"""Seconds per layout and drag method, and for drag, seconds versus drag distance.

    python bench/bench_layout_drag.py [--backbone tiny|sd15] [--device cpu|cuda] [--steps 2] [--repeats 1]
        [--distances 0.05 0.15 0.3 0.45] [--methods NAME ...] [--no-warm-up] [--out bench/results]

Every layout and drag method runs through ``run_comparison`` on its condition's example inputs (the photo of
``assets/``, the example boxes, drag and mask) at --steps with its default parameters, after one warm-up run (add-on
loads, first-call costs); the median of --repeats runs is printed. Layout methods run twice when they can edit a
photo: without a photo (generate) and with one. Then every drag method runs one horizontal drag per --distances
entry (a fraction of the image width, from 0.3 w at mid height), no mask, reporting seconds and the method's own
"distance after" where it tracks points: the gradient-free methods should not grow with the distance, the
optimising ones (DragDiffusion's motion supervision, which stops once the handles arrive) do. One JSON per run goes
to --out (git-ignored).
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

import methods  # noqa: E402, F401
from methods.core.backbone import Backbone  # noqa: E402
from methods.core.examples import example_inputs  # noqa: E402
from methods.core.registry import list_methods  # noqa: E402
from methods.core.runner import run_comparison  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402
from methods.core.slots import IMAGE, Drag, EditInputs  # noqa: E402
from methods.core.spec import Condition, Method  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def edit_mode(method: type[Method]) -> dict[str, Any]:
    """The method's photo-editing mode, when its ``mode`` parameter has one."""
    mode = next((p for p in method.params if p.name == "mode"), None)
    choice = next((c for c in mode.choices if c.startswith("edit")), None) if mode is not None else None
    return {"mode": choice} if choice else {}


def timed_runs(
    backbone: Backbone,
    method: type[Method],
    inputs: EditInputs,
    repeats: int,
    warm_up: bool = True,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One warm-up run (unless ``warm_up`` is off), then the median seconds of ``repeats`` runs (status and
    message of the last)."""
    seconds, record = [], {}
    for attempt in range(repeats + warm_up):
        started = time.perf_counter()
        values = {method.name: params or {}}
        record = run_comparison(backbone, method.condition, [method.name], inputs, seed=0, params=values).records[0]
        if attempt or not warm_up:
            seconds.append(time.perf_counter() - started)
        if record["status"] != "ok":
            break
    median = round(statistics.median(seconds), 3) if seconds else None
    return {
        "status": record["status"],
        "seconds": median,
        "message": record.get("message", ""),
        **record.get("info", {}),
    }


def per_method(
    backbone: Backbone, steps: int, repeats: int, names: set[str] | None, warm_up: bool = True
) -> list[dict[str, Any]]:
    rows = []
    for condition in (Condition.LAYOUT, Condition.DRAG):
        for method in list_methods(condition):
            if names and method.name not in names:
                continue
            inputs = example_inputs(condition, backbone, steps=steps)
            variants = [("photo", inputs, {})]
            if condition is Condition.LAYOUT:  # generate (no photo), then edit the photo where the method can
                blank = example_inputs(condition, backbone, steps=steps)
                blank.image = None
                variants = [("no photo", blank, {})]
                if IMAGE in method.optional:
                    variants.append(("photo", inputs, edit_mode(method)))
            for label, given, params in variants:
                row = {"condition": condition.value, "method": method.name, "input": label, "params": params}
                row.update(timed_runs(backbone, method, given, repeats, warm_up, params))
                rows.append(row)
                print(f"{condition.value:7s} {method.label:32s} {label:9s} {row['status']:8s} {row['seconds']} s")
    return rows


def by_distance(backbone: Backbone, steps: int, distances: list[float], names: set[str] | None) -> list[dict[str, Any]]:
    rows = []
    for method in list_methods(Condition.DRAG):
        if names and method.name not in names:
            continue
        for fraction in distances:
            inputs = example_inputs(Condition.DRAG, backbone, steps=steps)
            width, height = inputs.image.size
            start = (int(0.3 * width), height // 2)
            inputs.drags = [Drag(start, (min(width - 1, start[0] + round(fraction * width)), start[1]))]
            inputs.mask = None
            row = {"method": method.name, "distance": fraction, "pixels": inputs.drags[0].target[0] - start[0]}
            row.update(timed_runs(backbone, method, inputs, 1, warm_up=False))  # warmed up by per_method
            rows.append(row)
            after = row.get("distance_after_px", "")
            print(f"drag    {method.label:32s} d={row['pixels']:4d} px  {row['status']:8s} {row['seconds']} s  {after}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--distances", type=float, nargs="*", default=[0.05, 0.15, 0.3, 0.45])
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--no-warm-up", action="store_true", help="time the first run (add-on loads included)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()
    backbone = Backbone(Settings(backbone=args.backbone, device=args.device))
    print(f"{backbone.banner()} · torch {torch.__version__}, {torch.get_num_threads()} threads · steps {args.steps}")
    names = set(args.methods) if args.methods else None
    report = {
        "backbone": args.backbone,
        "device": str(backbone.device),
        "steps": args.steps,
        "methods": per_method(backbone, args.steps, args.repeats, names, not args.no_warm_up),
        "distance": by_distance(backbone, args.steps, args.distances, names),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"layout_drag_{args.backbone}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
