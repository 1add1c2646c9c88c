"""The one resident backbone: SD 1.5 modules loaded once; every method borrows them.

The backbone owns every weight. Methods ask it for a pipeline (built with diffusers ``from_pipe`` over
the same UNet / VAE / text encoder objects, so no new memory) and for add-ons (loaded lazily from the
add-on table, cached, evicted least-recently-used beyond a memory budget).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from methods.core import borrow, tiny
from methods.core.addons import AddonSpec, get_addon_spec
from methods.core.settings import Settings

logger = logging.getLogger(__name__)

SD15_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class Profile:
    name: str  # "sd15", "tiny" or "custom"
    location: str  # hub id or local folder of the base pipeline
    reason: str = ""  # why auto chose this profile

    @property
    def is_tiny(self) -> bool:
        return self.name == "tiny"


class BackboneUnavailable(RuntimeError):
    """The requested base weights can neither be read from the cache nor downloaded (one sentence for the user)."""


def _hub_cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "unet/config.json"), str)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true", "True", "yes", "on"}


def _hub_has(repo: str, timeout: float = 3.0) -> bool:
    """True if the base weights are in the local cache, or the hub answers 200 for the repo within ``timeout``
    (a 401, 404 or 429 is an answer, not access: those count as unreachable)."""
    if _hub_cached(repo):
        return True
    if _offline():
        return False
    try:
        import httpx

        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        response = httpx.get(f"{endpoint}/api/models/{repo}", timeout=timeout, follow_redirects=True)
        return response.status_code == 200
    except Exception:  # noqa: BLE001 - any network failure means "not reachable"
        return False


def unavailable_sentence(repo: str) -> str:
    from huggingface_hub import constants

    return (
        f"The Stable Diffusion 1.5 weights ({repo}) are not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
        "and the model hub cannot be reached: download them once where there is network with "
        "`python -m methods prefetch` (set HF_HOME to persistent storage), or start offline on random weights "
        "with `--backbone tiny`."
    )


def load_base(location: str, dtype: torch.dtype, variant: str | None) -> Any:
    """The SD 1.5 pipeline: its UNet, VAE and text encoder each loaded loudly (``load_model``), then the rest."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    from methods.core.loading import load_model

    parts = {
        name: load_model(model_class, location, variant=variant, subfolder=name, dtype=dtype)
        for name, model_class in (
            ("unet", UNet2DConditionModel),
            ("vae", AutoencoderKL),
            ("text_encoder", CLIPTextModel),
        )
    }
    return StableDiffusionPipeline.from_pretrained(
        location,
        **parts,
        dtype=dtype,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def resolve_profile(requested: str, cache_dir: Path) -> Profile:
    if requested == "tiny":
        return Profile("tiny", str(tiny.ensure_built(cache_dir, "base", tiny.build_base)), "requested")
    if requested == "sd15":
        if not _hub_has(SD15_ID):
            raise BackboneUnavailable(unavailable_sentence(SD15_ID))
        return Profile("sd15", SD15_ID, "requested")
    if requested == "auto":
        if _hub_has(SD15_ID):
            return Profile("sd15", SD15_ID, "weights cached or hub reachable")
        folder = tiny.ensure_built(cache_dir, "base", tiny.build_base)
        return Profile("tiny", str(folder), "no SD 1.5 weights in the local cache and the model hub is unreachable")
    return Profile("custom", requested, "requested")


def pick_device(requested: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """The device, and the weights' dtype: float16 on an accelerator and float32 on CPU unless ``dtype`` says."""
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
    device = torch.device(requested)
    if dtype != "auto":
        return device, getattr(torch, dtype)
    return device, (torch.float16 if device.type in {"cuda", "mps"} else torch.float32)


def modules_of(obj: Any, depth: int = 2) -> list[torch.nn.Module]:
    """The torch modules inside an add-on value (a module, a tuple, or a wrapper like OpenposeDetector)."""
    if isinstance(obj, torch.nn.Module):
        return [obj]
    if isinstance(obj, tuple | list):
        return [m for item in obj for m in modules_of(item, depth)]
    if depth > 0 and hasattr(obj, "__dict__"):
        return [m for value in vars(obj).values() for m in modules_of(value, depth - 1)]
    return []


def module_bytes(obj: Any) -> int:
    """Estimated resident size of an add-on: parameters and buffers of every module in it."""
    return sum(
        t.numel() * t.element_size() for module in modules_of(obj) for t in (*module.parameters(), *module.buffers())
    )


class Backbone:
    """One set of Stable Diffusion 1.5 modules, resident once, shared by every method."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.device, self.dtype = pick_device(self.settings.device, self.settings.dtype)
        requested = self.settings.backbone
        self.profile = resolve_profile(requested, self.settings.cache_dir)
        started = time.perf_counter()
        # The real repo has half-precision files: read those (half the bytes), cast to our dtype on load.
        variant = None if self.profile.is_tiny else "fp16"
        try:
            self.base = load_base(self.profile.location, self.dtype, variant)
        except Exception as error:
            if self.profile.name == "sd15" and isinstance(error, OSError):
                logger.info("loading %s failed: %s", SD15_ID, error)
                raise BackboneUnavailable(unavailable_sentence(SD15_ID)) from error
            if requested != "auto" or self.profile.is_tiny:
                raise
            logger.warning("could not load %s (%s); falling back to the tiny backbone", self.profile.location, error)
            folder = tiny.ensure_built(self.settings.cache_dir, "base", tiny.build_base)
            self.profile = Profile("tiny", str(folder), f"loading {SD15_ID} failed: {error}")
            self.base = load_base(str(folder), self.dtype, None)
        self.base.to(self.device)
        self.base.set_progress_bar_config(disable=True)
        for module in (self.unet, self.vae, self.text_encoder):
            module.eval().requires_grad_(False)
        self.load_seconds = time.perf_counter() - started
        self._addons: OrderedDict[str, Any] = OrderedDict()
        self._caches: dict[str, Any] = {}
        # One loader at a time, process-wide in effect: a `from_pretrained` patches module construction for every
        # thread while it runs (accelerate's empty-weights context), so a second load in parallel builds its model
        # on the meta device. Re-entrant: a loader may borrow another add-on. Runs and previews share it.
        self._loading = threading.RLock()
        self._borrows: list[borrow.Borrow] = []
        self.load_log: list[str] = []  # every add-on load, in order (a name twice = it was evicted and reloaded)
        logger.info(
            "backbone %s (%s) on %s/%s in %.1fs",
            self.profile.name,
            self.profile.location,
            self.device,
            self.dtype,
            self.load_seconds,
        )

    # -- the shared modules -------------------------------------------------------------------------
    @property
    def unet(self) -> Any:
        return self.base.unet

    @property
    def vae(self) -> Any:
        return self.base.vae

    @property
    def text_encoder(self) -> Any:
        return self.base.text_encoder

    @property
    def tokenizer(self) -> Any:
        return self.base.tokenizer

    @property
    def scheduler(self) -> Any:
        return self.base.scheduler

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size(self) -> int:
        """The working resolution (longest image side) the UNet was trained at."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (VAE factor x UNet downsampling)."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def shared_modules(self) -> dict[str, Any]:
        modules = {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder}
        for name, addon in self._addons.items():
            for i, part in enumerate(modules_of(addon)):
                modules[f"addon:{name}:{i}"] = part
        return modules

    # -- pipelines ----------------------------------------------------------------------------------
    def scheduler_copy(self, cls: Any = None) -> Any:
        """A fresh scheduler from the base config (the shared one is never stepped)."""
        from diffusers import DDIMScheduler

        return (cls or DDIMScheduler).from_config(self.scheduler.config)

    def pipeline(self, cls: Any, scheduler: Any = None, **components: Any) -> Any:
        """A diffusers pipeline of class ``cls`` over the shared modules (``from_pipe``), DDIM by default."""
        # from_pipe casts every module to `dtype` (float32 unless told): pass ours, or fp16 weights would be
        # converted in place to fp32 on the GPU for every method.
        pipe = cls.from_pipe(self.base, scheduler=scheduler or self.scheduler_copy(), dtype=self.dtype, **components)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    # -- add-ons ------------------------------------------------------------------------------------
    def addon_location(self, name: str) -> str:
        spec = get_addon_spec(name)
        if name in self.settings.addon_overrides:
            return self.settings.addon_overrides[name]
        if self.profile.is_tiny:
            return str(tiny.ensure_built(self.settings.cache_dir, f"addons/{name}", spec.build))
        return spec.repo

    def variant(self, spec: AddonSpec) -> str | None:
        """The weights variant to read first: the spec's ("fp16") for real checkpoints; the tiny ones have none."""
        return None if self.profile.is_tiny else spec.variant

    def addon(self, name: str) -> Any:
        """Load an add-on at first use, cache it, and evict least-recently-used ones over budget."""
        with self._loading:  # single flight: callers waiting for the same add-on get the one loaded copy
            if name in self._addons:
                self._addons.move_to_end(name)
                return self._addons[name]
            spec = get_addon_spec(name)
            started = time.perf_counter()
            value = spec.load(self.addon_location(name), spec, self)
            self._addons[name] = value
            for held in self._borrows:  # loaded inside a borrowed() block: restored with the rest
                held.adopt({f"addon:{name}:{i}": part for i, part in enumerate(modules_of(value))})
            self.load_log.append(name)
            logger.info(
                "loaded add-on %s in %.1fs (%.0f MB)", name, time.perf_counter() - started, module_bytes(value) / 2**20
            )
            self._evict(keep=name)
            return value

    def loaded_addons(self) -> list[str]:
        return list(self._addons)

    def _evict(self, keep: str) -> None:
        budget = self.settings.addon_budget_gb * 2**30
        while sum(module_bytes(v) for v in self._addons.values()) > budget:
            oldest = next((n for n in self._addons if n != keep), None)
            if oldest is None:
                break
            logger.info("evicting add-on %s (budget %.1f GB)", oldest, self.settings.addon_budget_gb)
            del self._addons[oldest]
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def cache(self, name: str, factory: Callable[[], Any]) -> Any:
        """A named cache owned by the backbone (inversions, CLAP scores...), made at first use."""
        with self._loading:
            if name not in self._caches:
                self._caches[name] = factory()
            return self._caches[name]

    # -- shared state -------------------------------------------------------------------------------
    @contextmanager
    def borrowed(self) -> Iterator[None]:
        with borrow.borrowed(self.shared_modules(), self.scheduler, self.tokenizer) as held:
            self._borrows.append(held)
            try:
                yield
            finally:
                self._borrows.remove(held)

    def state_fingerprint(self) -> dict[str, Any]:
        return borrow.shared_state(self.shared_modules(), self.scheduler, self.tokenizer)

    def banner(self) -> str:
        if self.profile.is_tiny:
            why = "the tiny profile was requested" if self.profile.reason == "requested" else self.profile.reason
            return (
                "⚠️ **Tiny backbone: random weights.** Every model here (UNet, VAE, text encoder, add-ons) was "
                f"built from small configs with seeded random weights ({why}). Outputs look like noise by design; "
                "the methods still "
                "run their real algorithms. For real images, start on a machine with internet access or a filled "
                "Hugging Face cache: `python app.py --backbone sd15`."
            )
        return f"Backbone: `{self.profile.location}` on {self.device.type} ({str(self.dtype).replace('torch.', '')})."
