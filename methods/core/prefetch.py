"""Download the real weights before the first visitor: ``python -m methods prefetch [--tabs text,mask] [--dry-run]``.

On a Space, run it at build time (or once on persistent storage, with ``HF_HOME`` pointing there), so no request
waits for gigabytes of checkpoints. It asks the hub for each repository's file list with sizes, keeps only the files
the loaders read (the ``fp16`` variant where the repository has one, safetensors before pickles), prints the total
first and then downloads with a progress bar. Files already in the cache are not fetched again.
"""

from __future__ import annotations

import argparse
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from methods.core.addons import ADDONS
from methods.core.backbone import SD15_ID
from methods.core.slots import MASK

BASE_FILES = ("model_index.json", "unet/", "vae/", "text_encoder/", "tokenizer/", "scheduler/")
WEIGHTS = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".msgpack", ".h5", ".onnx")
CONFIGS = (".json", ".txt", ".model")


@dataclass(frozen=True)
class Wanted:
    repo: str
    entries: tuple[str, ...]  # files, or folders ending with "/" ("" is the root folder)
    variant: str | None
    addons: tuple[str, ...]  # who needs it ("base" for the SD 1.5 pipeline)


def addons_of_tabs(tabs: Iterable[str] | None) -> list[str]:
    """The add-ons that the chosen tabs (all by default) may load: their methods' and their previews'."""
    import demos
    from methods.core.registry import list_methods

    wanted = None if tabs is None else set(tabs)
    names: dict[str, None] = {}
    for module in demos.tabs():
        condition = module.CONDITION
        if wanted is not None and condition.value not in wanted:
            continue
        for method in list_methods():
            if method.condition == condition:
                names.update(dict.fromkeys(method.addons))
                if MASK in (*method.requires, *method.optional):
                    names["sam"] = None  # the mask widget segments with a click
        names.update(dict.fromkeys(module.TAB.addons))
    return list(names)


def preload_names(wanted: Iterable[str]) -> list[str]:
    """The add-ons ``HUB_PRELOAD_ADDONS`` names: "all", tab names (their add-ons) or add-on names, in order.
    An unknown name raises ValueError with the known ones."""
    from methods.core.spec import Condition

    tabs = {c.value for c in Condition}
    names: dict[str, None] = {}
    for name in wanted:
        if name == "all":
            names.update(dict.fromkeys(addons_of_tabs(None)))
        elif name in tabs:
            names.update(dict.fromkeys(addons_of_tabs([name])))
        elif name in ADDONS:
            names[name] = None
        else:
            raise ValueError(
                f"HUB_PRELOAD_ADDONS: unknown {name!r}; use all, a tab ({', '.join(sorted(tabs))}) or an add-on"
            )
    return list(names)


def plan(tabs: Iterable[str] | None = None) -> list[Wanted]:
    """What to download, by repository (the base first), for the chosen tabs."""
    by_repo: dict[str, Wanted] = {SD15_ID: Wanted(SD15_ID, BASE_FILES, "fp16", ("base",))}
    for name in addons_of_tabs(tabs):
        spec = ADDONS[name]
        if ":" in spec.repo:  # not a hub repository: a URL (see `urls`) or a library's own download
            continue
        old = by_repo.get(spec.repo)
        entries = tuple(dict.fromkeys((*(old.entries if old else ()), *spec.download())))
        names = (*(old.addons if old else ()), name)
        by_repo[spec.repo] = Wanted(spec.repo, entries, spec.variant or (old.variant if old else None), names)
    return list(by_repo.values())


def urls(tabs: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Checkpoints the chosen tabs' add-ons read from a URL (the authors' own server), with the add-ons using each."""
    found: dict[str, list[str]] = {}
    for name in addons_of_tabs(tabs):
        spec = ADDONS[name]
        if "://" in spec.repo:
            for url in spec.files or (spec.repo,):
                found.setdefault(url, []).append(name)
    return found


def select(files: dict[str, int], entries: Iterable[str], variant: str | None) -> dict[str, int]:
    """The files (name -> bytes) a loader reads for ``entries``: exact names, or per folder its configs and one
    copy of its weights (the variant's safetensors, else plain safetensors, else the variant's / plain pickles)."""
    chosen: dict[str, int] = {}
    for entry in entries:
        if entry and not entry.endswith("/"):
            if entry in files:
                chosen[entry] = files[entry]
            continue
        folder = entry.rstrip("/")
        inside = {name: size for name, size in files.items() if posixpath.dirname(name) == folder}
        chosen.update({n: s for n, s in inside.items() if n.endswith(CONFIGS) and not n.endswith(WEIGHTS)})
        weights = [n for n in inside if n.endswith(WEIGHTS)]
        tag = f".{variant}." if variant else "\0"  # no file name holds a NUL
        for variant_only, safetensors_only in ((True, True), (False, True), (True, False), (False, False)):
            picked = [
                n
                for n in weights
                if (tag in n if variant_only else ".fp16." not in n)
                and (n.endswith(".safetensors") or not safetensors_only)
            ]
            if picked:
                chosen.update({n: inside[n] for n in picked})
                break
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m methods prefetch", description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", default=None, help="comma-separated tab names (default: every tab)")
    parser.add_argument("--dry-run", action="store_true", help="list the files and the total, download nothing")
    args = parser.parse_args(argv)
    tabs = None if args.tabs is None else [t.strip() for t in args.tabs.split(",") if t.strip()]

    from huggingface_hub import HfApi, hf_hub_download
    from tqdm import tqdm

    api = HfApi()
    todo: list[tuple[str, str, int]] = []
    for wanted in plan(tabs):
        try:
            info = api.model_info(wanted.repo, files_metadata=True)
        except Exception as error:  # noqa: BLE001 - offline, unknown repo, rate limit: one sentence
            print(f"Cannot list {wanted.repo} on the model hub ({type(error).__name__}): check the network / HF_TOKEN.")
            return 1
        files = {s.rfilename: int(s.size or 0) for s in info.siblings or ()}
        picked = select(files, wanted.entries, wanted.variant)
        total = sum(picked.values())
        shown = tqdm.format_sizeof(total, "B", 1024)
        print(f"{wanted.repo:<50} {len(picked):>3} files {shown:>10}  for {', '.join(wanted.addons)}")
        todo.extend((wanted.repo, name, size) for name, size in picked.items())
    total = sum(size for *_, size in todo)
    print(f"total: {len(todo)} files, {tqdm.format_sizeof(total, 'B', 1024)}")
    for url, users in urls(tabs).items():
        print(f"{url}  for {', '.join(users)} (from its authors' server, into torch's hub cache)")
    if args.dry_run:
        return 0
    from methods.core.loading import url_file

    for url in urls(tabs):
        url_file(url)
    with tqdm(total=total, unit="B", unit_scale=True, desc="prefetch") as bar:
        for repo, name, size in todo:
            hf_hub_download(repo, name)
            bar.update(size)
    return 0
