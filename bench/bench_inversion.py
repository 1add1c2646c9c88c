"""Time the inversions of methods/core/inversion.py and show the shared cache at work.

    python bench/bench_inversion.py [--backbone tiny|sd15|auto|<id>] [--device cpu|cuda] [--steps N]
        [--guidance W] [--inner-steps N] [--learning-rate LR] [--epsilons E ...] [--repeats N]

For each kind (DDIM, negative-prompt, direct, null-text with and without early stop at the same inner-step
cap) it prints the median seconds of --repeats cold inversions (cache cleared first; one warm-up run before),
the ratio to DDIM inversion, the reconstruction error at --guidance (relative to the photo's latent) and the
seconds of that guided reconstruction. Then several consumers invert the same photo, as the text tab does
when it runs its methods side by side, and the cache's hits / misses per kind are printed.

On the tiny random-weight backbone the null-text losses are ~1 (the paper's epsilon of 1e-5 never stops it
early), so larger epsilons (0.5, 2) are timed too by default; on SD 1.5 use the paper's values.
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
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from methods.core import inversion  # noqa: E402
from methods.core.backbone import Backbone  # noqa: E402
from methods.core.examples import example_inputs  # noqa: E402
from methods.core.latents import encode_image  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402


def synchronize(backbone: Backbone) -> None:
    if backbone.device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(backbone: Backbone, run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``run`` over ``repeats`` cold calls (cache cleared), after one warm-up call."""
    cache = inversion.inversion_cache(backbone)
    cache.clear()
    result = run()  # warm-up
    times = []
    for _ in range(repeats):
        cache.clear()
        synchronize(backbone)
        started = time.perf_counter()
        result = run()
        synchronize(backbone)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--inner-steps", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--epsilons", type=float, nargs="+", default=None, help="default: 1e-5 (and 0.5, 2 on tiny)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()
    if "HUB_TORCH_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["HUB_TORCH_THREADS"]))

    backbone = Backbone(Settings(backbone=args.backbone, device=args.device))
    inputs = example_inputs("text", backbone, steps=args.steps)
    photo, prompt, steps, guidance = inputs.image, inputs.source_prompt, args.steps, args.guidance
    epsilons = args.epsilons or ([1e-5, 0.5, 2.0] if backbone.profile.is_tiny else [1e-5])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; backbone {backbone.profile.name} on "
        f"{backbone.device}/{backbone.dtype}; photo {photo.size}, {steps} steps, guidance {guidance}, "
        f"null-text {args.inner_steps} inner steps at lr {args.learning_rate}; median of {args.repeats} after 1 warm-up"
    )
    latents = encode_image(backbone, photo)

    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("ddim", "ddim", {}),
        ("negative-prompt", "negative-prompt", {}),
        ("direct", "direct", {}),
    ]
    null_text = {"inner_steps": args.inner_steps, "learning_rate": args.learning_rate}
    cases.append(("null-text, no early stop", "null-text", {**null_text, "early_stop": False}))
    for epsilon in epsilons:
        cases.append((f"null-text, early stop eps={epsilon:g}", "null-text", {**null_text, "epsilon": epsilon}))

    rows = []
    for label, kind, options in cases:

        def run(kind: str = kind, options: dict[str, Any] = options) -> inversion.Inversion:
            return inversion.invert(backbone, photo, prompt, steps, guidance, kind, **options)

        seconds, result = median_seconds(backbone, run, args.repeats)
        synchronize(backbone)
        started = time.perf_counter()
        rebuilt = inversion.reconstruct(backbone, result)
        synchronize(backbone)
        sample_seconds = time.perf_counter() - started
        error = float((rebuilt - latents).norm() / latents.norm())
        iterations = sum(result.report.get("iterations", [])) if kind == "null-text" else None
        rows.append((label, seconds, error, sample_seconds, iterations))

    ddim_seconds = rows[0][1]
    print(f"\n{'inversion':<32} {'median s':>9} {'x DDIM':>7} {'recon err':>10} {'recon s':>8} {'Adam steps':>10}")
    for label, seconds, error, sample_seconds, iterations in rows:
        steps_text = "" if iterations is None else f"{iterations}/{steps * args.inner_steps}"
        print(
            f"{label:<32} {seconds:>9.3f} {seconds / ddim_seconds:>7.2f} {error:>10.4g} "
            f"{sample_seconds:>8.3f} {steps_text:>10}"
        )

    # several consumers of the same photo, as in one comparison run of the text tab
    cache = inversion.inversion_cache(backbone)
    cache.clear()
    consumers = [
        ("prompt-to-prompt", "null-text", null_text),
        ("plug-and-play", "ddim", {}),
        ("masactrl", "negative-prompt", {}),
        ("prompt-to-prompt (2nd target)", "null-text", null_text),
        ("masactrl (2nd target)", "negative-prompt", {}),
        ("direct-inversion p2p", "direct", {}),
    ]
    print("\nconsumers inverting the same photo (cache cleared first):")
    for name, kind, options in consumers:
        started = time.perf_counter()
        inversion.invert(backbone, photo, prompt, steps, guidance, kind, **options)
        synchronize(backbone)
        print(f"  {name:<32} {kind:<16} {time.perf_counter() - started:>8.3f} s")
    started = time.perf_counter()
    inversion.invert_image(backbone, photo, prompt, steps, 1.0, stop_at=max(1, round(0.7 * steps)))
    print(f"  {'drag-diffusion (invert_image)':<32} {'ddim prefix':<16} {time.perf_counter() - started:>8.3f} s")
    stats = ", ".join(f"{kind} {hits} hits / {misses} misses" for kind, (hits, misses) in cache.stats().items())
    print(f"cache: {stats}; {len(cache)} entries")


if __name__ == "__main__":
    main()
