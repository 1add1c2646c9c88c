"""Settings: environment variables and CLI flags, read in one place."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path


def _default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "editing-hub"


@dataclass(frozen=True)
class Settings:
    backbone: str = "auto"  # auto | sd15 | tiny | <hub id or local diffusers folder>
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    cache_dir: Path = field(default_factory=_default_cache)
    addon_budget_gb: float = 8.0  # add-ons beyond this (estimated) size are evicted, least recently used first
    queue_size: int = 8
    device: str = "auto"  # auto | cuda | mps | cpu
    addon_overrides: dict[str, str] = field(default_factory=dict)  # add-on name -> model id or folder

    @classmethod
    def from_env(cls, argv: list[str] | None = None) -> Settings:
        """Environment variables (HUB_*) first, then CLI flags override them."""
        env = os.environ
        overrides = {
            key[len("HUB_ADDON_") :].lower(): value for key, value in env.items() if key.startswith("HUB_ADDON_")
        }
        parser = argparse.ArgumentParser(description="Diffusion image-editing demo hub")
        parser.add_argument("--backbone", default=env.get("HUB_BACKBONE", "auto"))
        parser.add_argument("--host", default=env.get("HUB_HOST", env.get("GRADIO_SERVER_NAME", "127.0.0.1")))
        parser.add_argument("--port", type=int, default=int(env.get("HUB_PORT", env.get("GRADIO_SERVER_PORT", 7860))))
        parser.add_argument("--share", action="store_true", default=env.get("HUB_SHARE", "") in {"1", "true"})
        parser.add_argument("--cache-dir", default=env.get("HUB_CACHE_DIR", str(_default_cache())))
        parser.add_argument("--addon-budget-gb", type=float, default=float(env.get("HUB_ADDON_BUDGET_GB", 8.0)))
        parser.add_argument("--queue-size", type=int, default=int(env.get("HUB_QUEUE_SIZE", 8)))
        parser.add_argument("--device", default=env.get("HUB_DEVICE", "auto"))
        args = parser.parse_args(argv)
        return cls(
            backbone=args.backbone,
            host=args.host,
            port=args.port,
            share=args.share,
            cache_dir=Path(args.cache_dir),
            addon_budget_gb=args.addon_budget_gb,
            queue_size=args.queue_size,
            device=args.device,
            addon_overrides=overrides,
        )


def quiet_libraries() -> None:
    """Keep diffusers / transformers to errors: from_pipe warns on every pipeline it builds. Also silence the
    libraries' own deprecation notices (timm's moved modules, diffusers' decode_latents, controlnet_aux's
    re-registered TinyViT models), which say nothing a user of the hub can act on."""
    import warnings

    from diffusers.utils import logging as diffusers_logging

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"Overwriting tiny_vit.*", category=UserWarning)
    warnings.filterwarnings("ignore", message=r".*mediapipe.*", category=UserWarning)
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
