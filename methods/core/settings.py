"""Settings: environment variables and CLI flags, read in one place."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DTYPES = {"auto", "float16", "bfloat16", "float32"}


def _default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "editing-hub"


def _default_outputs() -> Path:
    return Path(tempfile.gettempdir()) / "editing-hub-runs"


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
    dtype: str = "auto"  # auto (float16 on cuda / mps, float32 on cpu) | float16 | bfloat16 | float32
    addon_overrides: dict[str, str] = field(default_factory=dict)  # add-on name -> model id or folder
    # -- bounds for a Space that runs for weeks ---------------------------------------------------------------
    output_dir: Path = field(default_factory=_default_outputs)  # one folder per run (grid PNG + records JSON)
    keep_runs: int = 200  # run folders kept (newest first); older ones are deleted
    keep_seconds: float = 3600.0  # run folders and Gradio's cached files older than this are deleted
    max_file_mb: float = 50.0  # largest upload (a photo, a 30 s clip): bigger ones are refused by the server
    max_sessions: int = 256  # browser / API sessions whose state is kept (oldest evicted; each holds ~1 MB)
    max_request_seconds: float = 600.0  # how long one Run may hold the GPU slot; later methods are skipped
    results_root: Path = Path("outputs")  # the leaderboard reads results folders under this folder only
    # add-ons loaded at startup, before the first request: "all", tab names or add-on names (ZeroGPU packs only what
    # is loaded before launch; elsewhere it moves the first-use load out of a visitor's Run)
    preload_addons: tuple[str, ...] = ()

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
        parser.add_argument("--dtype", default=env.get("HUB_DTYPE", "auto"), choices=sorted(DTYPES))
        parser.add_argument("--output-dir", default=env.get("HUB_OUTPUT_DIR", str(_default_outputs())))
        parser.add_argument("--keep-runs", type=int, default=int(env.get("HUB_KEEP_RUNS", 200)))
        parser.add_argument("--keep-seconds", type=float, default=float(env.get("HUB_KEEP_SECONDS", 3600)))
        parser.add_argument("--max-file-mb", type=float, default=float(env.get("HUB_MAX_FILE_MB", 50)))
        parser.add_argument("--max-sessions", type=int, default=int(env.get("HUB_MAX_SESSIONS", 256)))
        parser.add_argument("--max-request-seconds", type=float, default=float(env.get("HUB_MAX_REQUEST_SECONDS", 600)))
        parser.add_argument("--results-root", default=env.get("HUB_RESULTS_ROOT", "outputs"))
        parser.add_argument(
            "--preload-addons",
            default=env.get("HUB_PRELOAD_ADDONS", ""),
            help='add-ons loaded at startup, comma-separated: "all", tab names (text, mask, ...) or add-on names',
        )
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
            dtype=args.dtype,
            addon_overrides=overrides,
            output_dir=Path(args.output_dir),
            keep_runs=args.keep_runs,
            keep_seconds=args.keep_seconds,
            max_file_mb=args.max_file_mb,
            max_sessions=args.max_sessions,
            max_request_seconds=args.max_request_seconds,
            results_root=Path(args.results_root),
            preload_addons=tuple(name.strip() for name in args.preload_addons.split(",") if name.strip()),
        )


class _OfflineByRequest(logging.Filter):
    """Drops huggingface_hub's fallback notice when the Hub is unreachable only because offline mode was asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "offline mode is enabled" not in record.getMessage()


def quiet_libraries() -> None:
    """Keep diffusers / transformers to errors: from_pipe warns on every pipeline it builds. Also silence the
    libraries' own deprecation notices (timm's moved modules, diffusers' decode_latents, controlnet_aux's
    re-registered TinyViT models, diffusers' ``local_dir_use_symlinks``), which say nothing a user of the hub can act
    on, and huggingface_hub's "could not reach the Hub" for a start that asked to be offline (HF_HUB_OFFLINE=1)."""
    import warnings

    from diffusers.utils import logging as diffusers_logging

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"Overwriting tiny_vit.*", category=UserWarning)
    warnings.filterwarnings("ignore", message=r".*mediapipe.*", category=UserWarning)
    warnings.filterwarnings("ignore", message=r".*local_dir_use_symlinks.*", category=UserWarning)
    hub_logger = logging.getLogger("huggingface_hub.hf_api")
    if not any(isinstance(f, _OfflineByRequest) for f in hub_logger.filters):
        hub_logger.addFilter(_OfflineByRequest())
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
