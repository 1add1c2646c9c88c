"""Load every add-on of the pose, sketch and segmentation tabs on one backbone; print RSS and per-add-on sizes.

    python bench/bench_addons.py [--backbone tiny|sd15|auto|<id>] [--device cpu|cuda] [--extra NAME ...]

The add-ons are those the tabs' registered methods declare plus the tabs' own annotators (OpenPose for the
pose tab, the ADE20K segmenter and Segment Anything for the segmentation tab). The budget is lifted so that
nothing is evicted while measuring. For each add-on: load seconds, its estimated size (parameters + buffers,
the figure the backbone's LRU budget uses) and the process RSS after loading it (and its growth).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
import torch  # noqa: E402

import methods  # noqa: E402, F401
from methods.core.addons import ADDONS  # noqa: E402
from methods.core.backbone import Backbone, module_bytes  # noqa: E402
from methods.core.registry import list_methods  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402
from methods.core.spec import Condition  # noqa: E402

CONDITIONS = (Condition.POSE, Condition.SKETCH, Condition.SEGMENTATION)
TAB_ANNOTATORS = {
    Condition.POSE: ("openpose",),
    Condition.SKETCH: ("annotator_lineart", "annotator_hed", "annotator_pidinet"),
    Condition.SEGMENTATION: ("ade20k_segmenter", "sam"),
}


def rss() -> float:
    return psutil.Process().memory_info().rss / 2**20


def gpu() -> str:
    if not torch.cuda.is_available():
        return ""
    return f", CUDA allocated {torch.cuda.memory_allocated() / 2**20:.0f} MiB"


def tab_addons(extra: list[str]) -> list[tuple[str, str]]:
    """(add-on, who uses it) in tab order, each add-on once."""
    seen: dict[str, str] = {}
    for condition in CONDITIONS:
        for method in list_methods(condition):
            for name in method.addons:
                seen.setdefault(name, f"{condition.value}: {method.name}")
        for name in TAB_ANNOTATORS.get(condition, ()):
            if name in ADDONS:
                seen.setdefault(name, f"{condition.value}: tab annotator")
    for name in extra:
        seen.setdefault(name, "--extra")
    return list(seen.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--extra", nargs="*", default=[], help="more add-on names to load")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; RSS at start {rss():.0f} MiB")
    started = time.perf_counter()
    backbone = Backbone(Settings(backbone=args.backbone, device=args.device, addon_budget_gb=1e6))
    base = sum(module_bytes(m) for m in (backbone.unet, backbone.vae, backbone.text_encoder))
    print(
        f"backbone {backbone.profile.name} on {backbone.device}/{str(backbone.dtype).replace('torch.', '')} "
        f"in {time.perf_counter() - started:.1f}s: base modules {base / 2**20:.1f} MiB, RSS {rss():.0f} MiB{gpu()}"
    )
    print(f"\n{'add-on':<24} {'used by':<34} {'load s':>7} {'size MiB':>9} {'RSS MiB':>8} {'+RSS':>7}")
    total = 0
    for name, user in tab_addons(args.extra):
        before = rss()
        started = time.perf_counter()
        value = backbone.addon(name)
        seconds = time.perf_counter() - started
        size = module_bytes(value)
        total += size
        after = rss()
        print(f"{name:<24} {user:<34} {seconds:>7.2f} {size / 2**20:>9.1f} {after:>8.0f} {after - before:>+7.0f}")
    print(
        f"\nall {len(backbone.loaded_addons())} add-ons: {total / 2**20:.1f} MiB of weights; "
        f"RSS {rss():.0f} MiB{gpu()}; base + add-ons {(base + total) / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
