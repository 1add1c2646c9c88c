"""Command line: ``python -m evaluation evaluate --dataset DIR --out DIR [...]`` and ``... table --out DIR``.

Examples::

    python -m evaluation evaluate --dataset ../shared/editeval --out outputs/editeval --backbone tiny --steps 2
    HUB_JUDGE_BASE_URL=http://127.0.0.1:8000/v1 HUB_JUDGE_MODEL=my-vlm \\
        python -m evaluation evaluate --dataset DIR --out DIR --methods sdedit --judge openai
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from evaluation.judge import JUDGE_KINDS
from evaluation.metrics import DEFAULT_METRICS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description="Benchmark the hub's editing methods.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("evaluate", help="run methods on an EditEval-style dataset, score and tabulate")
    run.add_argument("--dataset", required=True, type=Path, help="folder with manifest.json and the images")
    run.add_argument("--out", required=True, type=Path, help="results folder (finished items are reused)")
    run.add_argument("--methods", nargs="+", default=None, help="text-tab method names (default: all of them)")
    run.add_argument("--tasks", nargs="+", default=None, help="tasks to run (default: all)")
    run.add_argument("--backbone", default=os.environ.get("HUB_BACKBONE", "auto"), help="auto | sd15 | tiny | id")
    run.add_argument("--device", default=os.environ.get("HUB_DEVICE", "auto"))
    run.add_argument("--steps", type=int, default=None, help="sampling steps (default: 4 on tiny, 30 otherwise)")
    run.add_argument("--guidance", type=float, default=7.5)
    run.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), choices=list(DEFAULT_METRICS))
    run.add_argument("--params", default="{}", help='method parameters as JSON, e.g. \'{"sdedit": {"strength": 0.5}}\'')
    run.add_argument("--judge", default="none", choices=JUDGE_KINDS, help="LMM Score judge backend")
    run.add_argument("--judge-model", default=None, help="judge model (default: HUB_JUDGE_MODEL)")
    run.add_argument("--judge-attempts", type=int, default=3, help="attempts per edit before it counts as missing")
    run.add_argument("--limit", type=int, default=None, help="only the first N usable items")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    table = commands.add_parser("table", help="print the Markdown table of a results folder")
    table.add_argument("--out", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("HUB_LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "table":
        sys.stdout.write((args.out / "table.md").read_text())
        return 0

    import methods  # noqa: F401  (registers every method)
    from evaluation.editeval import evaluate
    from evaluation.judge import make_judge
    from methods.core.backbone import Backbone
    from methods.core.settings import Settings, quiet_libraries

    quiet_libraries()
    settings = Settings.from_env(["--backbone", args.backbone, "--device", args.device])
    backbone = Backbone(settings)
    steps = args.steps or (4 if backbone.profile.is_tiny else 30)
    judge = make_judge(args.judge, model_id=args.judge_model, max_attempts=args.judge_attempts)
    summary = evaluate(
        backbone,
        args.dataset,
        args.out,
        methods=args.methods,
        tasks=args.tasks,
        steps=steps,
        guidance=args.guidance,
        metrics=args.metrics,
        params=json.loads(args.params),
        judge=judge,
        limit=args.limit,
        progress=not args.no_progress,
    )
    sys.stdout.write((summary.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
