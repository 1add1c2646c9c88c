"""Shared fixtures: the tiny backbone is built once per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set by pytest-xdist (scripts/test.sh runs one worker per core)
if WORKER:
    # Each worker its own Gradio cache (inside the system temp dir, which Gradio serves from): the hub's sweep of
    # Gradio's old cached files must never delete an upload another worker's request is reading.
    os.environ["GRADIO_TEMP_DIR"] = str(Path(tempfile.gettempdir()) / f"hub-tests-{WORKER}" / "gradio")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import methods  # noqa: E402, F401  (registers every method)
from methods.core.backbone import Backbone  # noqa: E402
from methods.core.settings import Settings  # noqa: E402

# One thread per worker: the tiny models' operations are too small to gain from intra-op threads, and two
# workers with two threads each on two cores slow each other down by an order of magnitude.
_threads = 1 if WORKER else max(1, min(2, os.cpu_count() or 1))
torch.set_num_threads(int(os.environ.get("HUB_TORCH_THREADS", _threads)))


def tiny_settings() -> Settings:
    cache = os.environ.get("HUB_CACHE_DIR", str(Path.home() / ".cache" / "editing-hub"))
    return Settings(backbone="tiny", cache_dir=Path(cache), device="cpu")


@pytest.fixture(scope="session")
def backbone() -> Backbone:
    return Backbone(tiny_settings())


def make_photo(size: int = 128, seed: int = 0) -> Image.Image:
    """A small synthetic 'photo': sky, ground, a sun and a house, plus mild noise."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), (120, 170, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, size * 0.65, size, size), fill=(70, 140, 60))
    draw.ellipse((size * 0.7, size * 0.08, size * 0.9, size * 0.28), fill=(250, 220, 80))
    draw.rectangle((size * 0.2, size * 0.45, size * 0.5, size * 0.75), fill=(180, 80, 60))
    draw.polygon(
        [(size * 0.17, size * 0.45), (size * 0.35, size * 0.3), (size * 0.53, size * 0.45)], fill=(110, 50, 40)
    )
    array = np.asarray(image).astype(np.int16) + rng.integers(-8, 9, (size, size, 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    return make_photo()


def center_mask(size: tuple[int, int], fraction: float = 0.5) -> Image.Image:
    w, h = size
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(
        (w * (1 - fraction) / 2, h * (1 - fraction) / 2, w * (1 + fraction) / 2, h * (1 + fraction) / 2), fill=255
    )
    return mask
