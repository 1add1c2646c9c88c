"""Seconds per audio and class method, and for audio, seconds versus the clip's length.

    python bench/bench_audio_class.py [--backbone tiny|sd15] [--device cpu|cuda] [--steps 2] [--repeats 3]
        [--lengths 1 10 30] [--methods NAME ...] [--no-warm-up] [--out bench/results]

Every audio and class method runs through ``run_comparison`` on its condition's example inputs (the photo of
``assets/``, the example clip or classes) at --steps with its default parameters, after one warm-up run (add-on
loads, first-call costs); the median of --repeats runs is printed with what the method derived (tags, transcript,
embedding cosine, log-probabilities). Then every audio method runs once per --lengths entry (the example clip
looped to that many seconds): the readers that cut the clip into fixed windows (CLAP: 10 s, ImageBind: three 2 s
windows, Whisper: 30 s) should grow little. One JSON per run goes to --out (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import methods  # noqa: E402, F401
from bench.bench_layout_drag import timed_runs  # noqa: E402
from methods.core.backbone import Backbone  # noqa: E402
from methods.core.examples import example_inputs  # noqa: E402
from methods.core.registry import list_methods  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402
from methods.core.spec import Audio, Condition  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def per_method(
    backbone: Backbone, steps: int, repeats: int, names: set[str] | None, warm_up: bool = True
) -> list[dict[str, Any]]:
    rows = []
    for condition in (Condition.AUDIO, Condition.CLASS):
        for method in list_methods(condition):
            if names and method.name not in names:
                continue
            inputs = example_inputs(condition, backbone, steps=steps)
            row = {"condition": condition.value, "method": method.name}
            row.update(timed_runs(backbone, method, inputs, repeats, warm_up))
            rows.append(row)
            derived = {k: v for k, v in row.items() if k not in {"condition", "method", "status", "seconds", "message"}}
            print(f"{condition.value:5s} {method.label:48s} {row['status']:7s} {row['seconds']} s  {derived}")
    return rows


def by_length(backbone: Backbone, steps: int, lengths: list[float], names: set[str] | None) -> list[dict[str, Any]]:
    rows = []
    for method in list_methods(Condition.AUDIO):
        if names and method.name not in names:
            continue
        for seconds in lengths:
            inputs = example_inputs(Condition.AUDIO, backbone, steps=steps)
            clip = inputs.audio
            repeats = int(np.ceil(seconds * clip.sampling_rate / len(clip.waveform)))
            waveform = np.tile(clip.waveform, repeats)[: int(seconds * clip.sampling_rate)]
            inputs.audio = Audio(waveform, clip.sampling_rate)
            row = {"method": method.name, "clip_seconds": seconds}
            row.update(timed_runs(backbone, method, inputs, 1, warm_up=False))  # warmed up by per_method
            rows.append(row)
            print(f"audio {method.label:48s} clip {seconds:5.1f} s  {row['status']:7s} {row['seconds']} s")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lengths", type=float, nargs="*", default=[1.0, 10.0, 30.0])
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
        "clip_length": by_length(backbone, args.steps, args.lengths, names),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"audio_class_{args.backbone}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
