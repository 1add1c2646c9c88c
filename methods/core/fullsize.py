"""The full-size profile: SD 1.5 and every add-on at their real configs, with seeded random weights, in a hub cache.

``python -m methods build-full`` (also ``python -m methods.core.fullsize``) writes the base pipeline and every add-on
whose spec names a ``build_full`` builder into a Hugging Face hub cache, under the real repository ids, subfolders
and file names (fp16 variant files where the real repository has them). Afterwards
``HF_HUB_OFFLINE=1 HF_HUB_CACHE=<dir> python app.py --backbone sd15`` loads everything through the very same
``from_pretrained`` / ``hf_hub_download`` calls as the real weights: memory, speed and loading checks at the real
sizes on a machine with no network. Outputs look like noise.

How it stays fast: each model is built on the meta device (no memory, no default init), then every parameter is
materialised once, directly in the target dtype on the target device, from a seeded generator: weights
normal(0, 1/sqrt(fan_in)) (activations stay bounded, so half precision does not overflow), norm weights 1,
biases 0. A repository's ``refs/main`` holds a fake commit; a ``.complete`` marker in its snapshot records which
pieces were written in which dtype, so a second run skips them. A repository whose ``refs/main`` points at another
commit (real downloaded files) is never touched.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

FULL_VERSION = "full-v1"
SEED = 0
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
MARKER = ".complete"
DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


# -- the real configs of the base model --------------------------------------------------------------------------
def unet_config(**overrides: Any) -> dict[str, Any]:
    """SD 1.5's unet/config.json (also SD 1.4's, and the base of the inpainting / InstructPix2Pix / GLIGEN /
    Paint-by-Example UNets, which change the keys in ``overrides``)."""
    return {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "center_input_sample": False,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "downsample_padding": 1,
        "mid_block_scale_factor": 1,
        "act_fn": "silu",
        "norm_num_groups": 32,
        "norm_eps": 1e-5,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
        **overrides,
    }


def vae_config() -> dict[str, Any]:
    """SD 1.5's vae/config.json."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 512,
        "scaling_factor": 0.18215,
    }


def text_encoder_config() -> dict[str, Any]:
    """SD 1.5's text_encoder/config.json: CLIP ViT-L/14's text tower (with CLIP's legacy token ids)."""
    return {
        "vocab_size": 49408,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": 768,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
    }


def scheduler_config() -> dict[str, Any]:
    """SD 1.5's scheduler/scheduler_config.json (PNDM; ``clip_sample`` false is added to the file afterwards, as
    in the real one, because PNDM itself has no such argument)."""
    return {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "set_alpha_to_one": False,
    }


def sd15_unet() -> Any:
    """SD 1.5's UNet class at its real config (call inside ``Writer.build`` or ``meta()``: no weights)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(unet_config())


# -- seeded random weights, straight into the target dtype and device --------------------------------------------
@contextmanager
def meta() -> Iterator[None]:
    """Build modules on the meta device: parameters have shapes but no memory (buffers stay real)."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        yield


_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


def _is_norm(module: nn.Module) -> bool:
    # also ConvNextLayerNorm, SAM's LayerNorm2d, RMSNorm...: every class named after a norm
    return isinstance(module, _NORMS) or "Norm" in type(module).__name__


def _initial(
    module: nn.Module, name: str, shape: torch.Size, writer: Writer, generator: torch.Generator
) -> torch.Tensor:
    tensor = torch.empty(shape, dtype=writer.weights_dtype, device=writer.device)
    if tensor.ndim == 1 and name.endswith("bias"):
        return tensor.zero_()
    if tensor.ndim == 1 and _is_norm(module):
        return tensor.fill_(1.0)
    if tensor.ndim == 0:  # gates (GLIGEN's alphas: open) and CLAP's logit scales (CLIP's init, log 1/0.07)
        return tensor.fill_(math.log(1 / 0.07) if "logit_scale" in name else 1.0)
    fan_in = math.prod(shape[1:]) if tensor.ndim >= 2 else shape[0]
    return tensor.normal_(0.0, fan_in**-0.5, generator=generator)


@dataclass
class Writer:
    """How one piece is written: dtype, device and seeded init. A dry run writes no weights, only counts them
    (``planned``: weight file relative to ``root`` -> bytes), so ``--list`` needs no memory."""

    dtype: torch.dtype = torch.float16
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    variant: str | None = None
    dry_run: bool = False
    root: Path | None = None
    planned: dict[str, int] = field(default_factory=dict)

    @property
    def weights_dtype(self) -> torch.dtype:
        """fp16 for an "fp16" variant (those files are half precision in the real repositories), else ``dtype``."""
        return torch.float16 if self.variant == "fp16" else self.dtype

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(SEED + seed)

    def build(self, factory: Callable[[], nn.Module], seed: int) -> Any:
        """``factory()`` on the meta device, then every parameter materialised from the seeded generator."""
        with meta():
            model = factory()
        if self.dry_run:
            return model
        generator = self.generator(seed)
        made: dict[int, nn.Parameter] = {}
        originals: list[nn.Parameter] = []  # keeps ids unique while tied parameters are looked up
        with torch.no_grad():
            for module in model.modules():
                for name, param in list(module._parameters.items()):
                    if param is None:
                        continue
                    if id(param) not in made:
                        originals.append(param)
                        value = _initial(module, name, param.shape, self, generator)
                        made[id(param)] = nn.Parameter(value, requires_grad=False)
                    module._parameters[name] = made[id(param)]
                for name, buffer in list(module._buffers.items()):
                    if buffer is not None:  # buffers were built for real (positions, means): keep their values
                        module._buffers[name] = buffer.to(self.device)
        return model

    def normal_(self, tensors: Iterable[torch.Tensor], std: float, seed: int) -> None:
        """Redraw ``tensors`` from normal(0, std) (e.g. ControlNet's zero convolutions: small, not zero)."""
        if self.dry_run:
            return
        generator = self.generator(seed)
        with torch.no_grad():
            for tensor in tensors:
                tensor.normal_(0.0, std, generator=generator)

    # -- writing ----------------------------------------------------------------------------------------------
    def _plan(self, path: Path, tensors: Iterable[torch.Tensor]) -> None:
        # parameters are drawn in the weights' dtype; buffers keep their own
        itemsize = self.weights_dtype.itemsize
        size = sum(t.numel() * (itemsize if t.is_meta and t.is_floating_point() else t.element_size()) for t in tensors)
        self.planned[str(path.relative_to(self.root) if self.root else path)] = size

    def save_model(self, model: Any, folder: Path) -> None:
        """``save_pretrained`` (safetensors, with the variant); a dry run writes the config only."""
        if not self.dry_run:
            model.save_pretrained(folder, variant=self.variant)
            return
        from diffusers import ModelMixin

        if isinstance(model, ModelMixin):
            model.save_config(folder)
            filename = "diffusion_pytorch_model.safetensors"
        else:
            model.config.save_pretrained(folder)
            filename = "model.safetensors"
        if self.variant:
            stem, suffix = filename.rsplit(".", 1)
            filename = f"{stem}.{self.variant}.{suffix}"
        self._plan(folder / filename, model.state_dict().values())

    def save_pipeline(self, pipe: Any, folder: Path) -> None:
        """A diffusers pipeline as its ``save_pretrained`` writes it (model_index.json + one folder per part)."""
        if not self.dry_run:
            pipe.save_pretrained(folder, variant=self.variant)
            return
        pipe.save_config(folder)
        for name, component in pipe.components.items():
            if isinstance(component, nn.Module):
                self.save_model(component, folder / name)
            elif component is not None:
                component.save_pretrained(folder / name)

    def save_tensors(self, tensors: dict[str, torch.Tensor], path: Path) -> None:
        """A flat safetensors file (e.g. IP-Adapter's weights, which diffusers' loader reads by name)."""
        if self.dry_run:
            self._plan(path, tensors.values())
            return
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})

    def save_torch(self, state: dict[str, Any], path: Path) -> None:
        """A ``torch.save`` file (for repositories that ship .pth state dicts), on the CPU."""

        def flat(value: Any) -> Iterator[torch.Tensor]:
            if isinstance(value, dict):
                for item in value.values():
                    yield from flat(item)
            elif isinstance(value, torch.Tensor):
                yield value

        if self.dry_run:
            self._plan(path, flat(state))
            return

        def to_cpu(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: to_cpu(v) for k, v in value.items()}
            return value.detach().cpu() if isinstance(value, torch.Tensor) else value

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(to_cpu(state), path)


# -- the base model ----------------------------------------------------------------------------------------------
def build_base(folder: Path, writer: Writer) -> None:
    """stable-diffusion-v1-5/stable-diffusion-v1-5 as ``StableDiffusionPipeline.save_pretrained`` writes it with
    no safety checker (model_index.json, unet, vae, text_encoder, tokenizer, scheduler)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    from methods.core.tiny import clip_tokenizer

    pipe = StableDiffusionPipeline(
        vae=writer.build(lambda: AutoencoderKL.from_config(vae_config()), seed=2),
        text_encoder=writer.build(lambda: CLIPTextModel(CLIPTextConfig(**text_encoder_config())), seed=1),
        tokenizer=clip_tokenizer(),  # CLIP's real vocabulary and merges, as the tiny base
        unet=writer.build(sd15_unet, seed=4),
        scheduler=PNDMScheduler.from_config(scheduler_config()),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    writer.save_pipeline(pipe, folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["clip_sample"] = False
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


# -- the hub cache -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """One builder's output in one repository (several add-ons may share a repository)."""

    name: str
    repo: str
    builder: str  # "package.module:function", called as function(snapshot_folder, writer)
    variant: str | None = None

    def build(self, folder: Path, writer: Writer) -> None:
        module, _, function = self.builder.partition(":")
        getattr(importlib.import_module(module), function)(folder, writer)


def pieces() -> list[Piece]:
    """The base, then every add-on whose spec names a full builder, in the table's order."""
    from methods.core.addons import ADDONS

    found = [Piece("base", SD15_REPO, f"{__name__}:build_base", "fp16")]
    found += [Piece(s.name, s.repo, s.build_full, s.variant) for s in ADDONS.values() if s.build_full]
    return found


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def fake_commit(repo: str) -> str:
    return hashlib.sha1(f"{FULL_VERSION}:{repo}".encode()).hexdigest()


def repo_folder(cache: Path, repo: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return cache / repo_folder_name(repo_id=repo, repo_type="model")


def piece_folder(cache: Path, repo: str) -> Path:
    """Where a piece's files go: our fake commit's snapshot of a hub repository, or ``<cache>/url-files`` for a URL."""
    if "://" in repo:
        from methods.core.loading import standin_path

        return standin_path(repo, cache).parent
    return repo_folder(cache, repo) / "snapshots" / fake_commit(repo)


def snapshot(cache: Path, repo: str) -> Path | None:
    """The snapshot folder of ``repo`` (refs/main -> our fake commit, created if absent); None if the cache holds
    another commit of it (real files: not ours to overwrite)."""
    if "://" in repo:  # a file its loader downloads by URL (ImageBind, BEATs): the stand-in goes to <cache>/url-files
        folder = piece_folder(cache, repo)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    commit = fake_commit(repo)
    refs = repo_folder(cache, repo) / "refs" / "main"
    if refs.exists() and refs.read_text().strip() != commit:
        return None
    folder = piece_folder(cache, repo)
    folder.mkdir(parents=True, exist_ok=True)
    if not refs.exists():
        refs.parent.mkdir(parents=True, exist_ok=True)
        refs.write_text(commit)
    return folder


def read_marker(folder: Path) -> dict[str, str]:
    """Piece name -> dtype written, from the snapshot's marker (empty if none or from another version)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return dict(marker.get("pieces", {})) if marker.get("version") == FULL_VERSION else {}


def _mark(folder: Path, name: str, dtype: torch.dtype) -> None:
    done = {**read_marker(folder), name: str(dtype).removeprefix("torch.")}
    (folder / MARKER).write_text(json.dumps({"version": FULL_VERSION, "pieces": done}, indent=2) + "\n")


def _files(folder: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file() and p.name != MARKER}


def _size(n: float) -> str:
    from tqdm import tqdm

    return tqdm.format_sizeof(n, "B", 1024)


@dataclass
class Outcome:
    piece: Piece
    status: str  # "built", "skipped" (already complete), "refused" (another commit cached), "planned" (--list)
    bytes: int = 0
    seconds: float = 0.0
    files: dict[str, int] = field(default_factory=dict)


def build_piece(piece: Piece, cache: Path, dtype: torch.dtype, device: torch.device) -> Outcome:
    folder = snapshot(cache, piece.repo)
    if folder is None:
        return Outcome(piece, "refused")
    writer = Writer(dtype=dtype, device=device, variant=piece.variant, root=folder)
    if read_marker(folder).get(piece.name) == str(writer.weights_dtype).removeprefix("torch."):
        return Outcome(piece, "skipped")
    logger.info("building %s (%s) in %s", piece.name, piece.repo, folder)
    before, started = _files(folder), time.perf_counter()
    piece.build(folder, writer)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    written = {str(p.relative_to(folder)): s for p, (m, s) in _files(folder).items() if before.get(p) != (m, s)}
    _mark(folder, piece.name, writer.weights_dtype)
    return Outcome(piece, "built", sum(written.values()), seconds, written)


def plan_piece(piece: Piece, cache: Path, dtype: torch.dtype) -> Outcome:
    """What ``build_piece`` would write: the builder on the meta device, small files into a scratch folder."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        writer = Writer(dtype=dtype, variant=piece.variant, dry_run=True, root=root)
        piece.build(root, writer)
        files = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    files.update(writer.planned)
    folder = piece_folder(cache, piece.repo)
    done = read_marker(folder).get(piece.name) == str(writer.weights_dtype).removeprefix("torch.")
    return Outcome(piece, "skipped" if done else "planned", sum(files.values()), files=dict(sorted(files.items())))


# -- the command -------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m methods build-full",
        description="Write SD 1.5 and every add-on at full size with seeded random weights into a Hugging Face "
        "hub cache (offline loading at the real sizes).",
    )
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16", help="for files without an fp16 variant")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the weights are drawn")
    parser.add_argument("--cache-dir", type=Path, default=None, help="hub cache (default: huggingface_hub's)")
    parser.add_argument("--only", default="", help="comma-separated pieces: base and add-on names")
    parser.add_argument("--list", action="store_true", help="print what would be written, with sizes")
    args = parser.parse_args(argv)
    known = [p.name for p in pieces()]
    args.names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown piece(s) {', '.join(unknown)}; known pieces: {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    from methods.core.settings import quiet_libraries

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_libraries()
    args = parse_args(argv)
    cache = (args.cache_dir or hub_cache()).expanduser()
    dtype, device = DTYPES[args.dtype], torch.device(args.device)
    chosen = [p for p in pieces() if not args.names or p.name in args.names]
    started = time.perf_counter()
    outcomes = [plan_piece(p, cache, dtype) if args.list else build_piece(p, cache, dtype, device) for p in chosen]
    _report(outcomes, cache, time.perf_counter() - started, listing=args.list)
    return 1 if any(o.status == "refused" for o in outcomes) else 0


def _report(outcomes: list[Outcome], cache: Path, seconds: float, listing: bool) -> None:
    by_repo: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_repo.setdefault(outcome.piece.repo, []).append(outcome)
    for repo, group in by_repo.items():
        total = sum(o.bytes for o in group)
        took = sum(o.seconds for o in group)
        states = ", ".join(f"{o.piece.name}: {o.status}" for o in group)
        print(f"{repo:<50} {_size(total):>10}  {took:6.1f} s  ({states})")
        if any(o.status == "refused" for o in group):
            print(f"    not touched: {repo_folder(cache, repo)} holds another commit (real files?)")
        if listing:
            for o in group:
                for path, size in o.files.items():
                    print(f"    {path:<60} {_size(size):>10}")
    verb = "would write" if listing else "wrote"
    total = sum(o.bytes for o in outcomes if o.status in {"built", "planned"})
    print(f"{verb} {_size(total)} into {cache} in {seconds:.1f} s")


if __name__ == "__main__":
    raise SystemExit(main())
