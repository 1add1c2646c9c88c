"""Cost of attention-controlled editing against one plain generation of the same size, steps and guidance.

    python bench/bench_p2p.py [--backbone tiny|sd15|auto|<id>] [--steps N] [--repeats N] [--device cpu|cuda]
        [--threads N]

Rows (median seconds of --repeats rounds after a warm-up round; the rows alternate within each round):
* plain: one ``StableDiffusionPipeline`` call (batch [uncond, cond] per step, one VAE decode);
* two branches, no edit: the two-branch sampler with a pass-through controller (batch of 4 per step);
* P2P / PnP / MasaCtrl edit: the method's editing pass (two branches batched, source and target decoded),
  the photo's DDIM inversion already cached (as when several methods run on the same photo);
* P2P incl. inversion: the same with the inversion cache cleared before each run (inversion = steps more
  UNet calls with batch 1).
The target is an editing pass within 2.1x of the plain generation (two branches in one UNet call per step).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from diffusers import StableDiffusionPipeline  # noqa: E402

import methods  # noqa: E402, F401
from methods.core.attention import AttentionController  # noqa: E402
from methods.core.backbone import Backbone  # noqa: E402
from methods.core.branches import sample_branches  # noqa: E402
from methods.core.examples import example_inputs  # noqa: E402
from methods.core.inversion import inversion_cache, invert  # noqa: E402
from methods.core.registry import get_method  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402
from methods.core.spec import RunContext  # noqa: E402

TARGET = 2.1
EDITORS = ("prompt_to_prompt", "plug_and_play", "masactrl")
Row = tuple[str, Callable[[], object], Callable[[], None] | None]  # label, run, untimed set-up


def measure(backbone: Backbone, rows: list[Row], repeats: int) -> list[float]:
    """Median seconds per row over ``repeats`` rounds after one warm-up round; rows alternate within a round,
    so a change in machine load hits every row alike. A row's ``before`` runs untimed ahead of it."""
    times: list[list[float]] = [[] for _ in rows]
    for round_index in range(repeats + 1):
        for row, (_, run, before) in enumerate(rows):
            if before is not None:
                before()
            if backbone.device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            with torch.no_grad(), backbone.borrowed():
                run()
            if backbone.device.type == "cuda":
                torch.cuda.synchronize()
            if round_index:
                times[row].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("HUB_TORCH_THREADS", "0")) or None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()

    backbone = Backbone(Settings(backbone=args.backbone, device=args.device))
    inputs = example_inputs("text", backbone, steps=args.steps)
    width, height = inputs.image.size
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; backbone {backbone.profile.name} on "
        f"{backbone.device}/{str(backbone.dtype).replace('torch.', '')}; {width}x{height}px, {args.steps} steps, "
        f"guidance {inputs.guidance}, median of {args.repeats}"
    )
    pipe = backbone.pipeline(StableDiffusionPipeline)

    def ctx() -> RunContext:
        return RunContext(backbone=backbone, seed=0, generator=torch.Generator(backbone.device).manual_seed(0))

    def plain() -> object:
        return pipe(
            inputs.prompt,
            height=height,
            width=width,
            num_inference_steps=args.steps,
            guidance_scale=inputs.guidance,
            generator=ctx().generator,
        ).images[0]

    def method(name: str) -> Callable[[], object]:
        cls = get_method(name)
        return lambda: cls().run(ctx(), inputs, cls.resolve_params({}))

    inversion = invert(backbone, inputs.image, inputs.source_prompt, args.steps, inputs.guidance, "ddim")

    def branches() -> object:
        return sample_branches(backbone, inversion, inversion.prompt_embeds, AttentionController(args.steps))

    clear = inversion_cache(backbone).clear
    rows: list[Row] = [
        ("plain generation", plain, None),
        ("two branches, no edit (sampling only)", branches, None),
        *((f"{name} edit (inversion cached)", method(name), None) for name in EDITORS),
        ("prompt_to_prompt incl. DDIM inversion", method("prompt_to_prompt"), clear),
    ]
    seconds = measure(backbone, rows, args.repeats)
    base = seconds[0]
    for (label, _, _), value in zip(rows, seconds, strict=True):
        print(f"  {label:<42} {value:8.3f}s  {value / base:5.2f}x")
    ratio = seconds[2] / base
    print(
        f"P2P editing pass / plain generation = {ratio:.2f}x "
        f"(target <= {TARGET}x): {'ok' if ratio <= TARGET else 'OVER'}"
    )


if __name__ == "__main__":
    main()
