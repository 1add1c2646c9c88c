"""Small assertions shared by the test files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image

from methods.core.backbone import Backbone
from methods.core.settings import Settings


def weights_checksum(backbone: Backbone) -> dict[str, float]:
    """A per-module checksum of every shared weight (base modules and loaded add-ons)."""
    sums = {}
    for name, module in backbone.shared_modules().items():
        with torch.no_grad():
            sums[name] = float(sum(p.double().sum() + p.double().abs().sum() for p in module.parameters()))
    return sums


def assert_same_image(a: Image.Image, b: Image.Image, atol: int = 0) -> None:
    x, y = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
    assert x.shape == y.shape, (x.shape, y.shape)
    diff = int(np.abs(x - y).max())
    assert diff <= atol, f"images differ by up to {diff} (allowed {atol})"


def seeded_generator(seed: int) -> torch.Generator:
    """The generator a direct diffusers call gets to match the hub's run with ``seed`` (the runner seeds the
    global RNG too, for the few pipelines that draw from it)."""
    torch.manual_seed(seed)
    return torch.Generator("cpu").manual_seed(seed)


def pil_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def direct_components(backbone: Backbone, **override: Any) -> dict[str, Any]:
    """The shared modules as keyword arguments for a pipeline built by hand (not through the hub)."""
    from diffusers import DDIMScheduler

    components = {
        "vae": backbone.vae,
        "text_encoder": backbone.text_encoder,
        "tokenizer": backbone.tokenizer,
        "unet": backbone.unet,
        "scheduler": DDIMScheduler.from_config(backbone.scheduler.config),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    components.update(override)
    return components


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(backbone: Backbone, settings: Settings | None = None) -> Iterator[tuple[str, Any]]:
    """The whole app on ``backbone``, launched as app.py launches it (same limits), on a free local port."""
    from app import build_app, launch_options
    from demos.common import Hub

    settings = settings or backbone.settings
    app = build_app(Hub(backbone, settings), settings)
    port = free_port()
    app.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options(settings)
    )
    try:
        yield f"http://127.0.0.1:{port}/", app
    finally:
        app.close()
