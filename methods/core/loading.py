"""Loading a checkpoint loudly: the half-precision variant first, and no weight left uninitialised.

diffusers and transformers load a checkpoint that lacks some of the model's weights with only a logger warning
(which ``quiet_libraries`` hides): those weights stay random (transformers) or on the meta device (diffusers), and
the method then runs on garbage or fails far from the cause. Every model the hub loads goes through ``load_model``,
which refuses such a checkpoint with a sentence naming the repository and the keys.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Buffers that a checkpoint may omit because the model recomputes them (not learned weights).
KNOWN_BUFFERS = ("position_ids", "num_batches_tracked")


class IncompleteCheckpoint(RuntimeError):
    """A checkpoint that leaves weights of the model uninitialised."""


def where(location: str, subfolder: str | None = None) -> str:
    return f"{location} ({subfolder})" if subfolder else location


def check_complete(info: dict[str, Any], location: str, subfolder: str | None = None) -> None:
    """Raise ``IncompleteCheckpoint`` if ``info`` (``output_loading_info``) lists missing or mismatched weights."""
    missing = sorted(key for key in info.get("missing_keys", ()) if not key.endswith(KNOWN_BUFFERS))
    mismatched = sorted(str(item[0] if isinstance(item, tuple) else item) for item in info.get("mismatched_keys", ()))
    if not missing and not mismatched:
        return
    keys = missing or mismatched
    shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    problem = "missing from" if missing else "of another shape in"
    raise IncompleteCheckpoint(
        f"{where(location, subfolder)}: {len(keys)} weight(s) of the model are {problem} the checkpoint ({shown}), "
        "so they would run uninitialised. The files are incomplete or belong to another architecture: delete them "
        "from the Hugging Face cache and download again, or point the add-on at the right checkpoint."
    )


def load_model(model_class: Any, location: str, *, variant: str | None = None, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(location, **kwargs)``, trying ``variant`` (e.g. "fp16") first when given and
    falling back to the full-precision files where the repository has no such variant; raises
    ``IncompleteCheckpoint`` when any weight is missing from the files."""
    subfolder = kwargs.get("subfolder")
    if variant is not None:
        try:
            model, info = model_class.from_pretrained(location, variant=variant, output_loading_info=True, **kwargs)
        except OSError as error:
            if f".{variant}." not in str(error):
                raise
            logger.info("%s has no %s variant; loading its full-precision files", where(location, subfolder), variant)
        else:
            check_complete(info, location, subfolder)
            return model
    model, info = model_class.from_pretrained(location, output_loading_info=True, **kwargs)
    check_complete(info, location, subfolder)
    return model


def url_name(url: str) -> str:
    """The file name of a URL's path (a signed URL's query dropped)."""
    from urllib.parse import urlsplit

    return urlsplit(url).path.rsplit("/", 1)[-1]


def url_cache_path(url: str) -> Path:
    """Where a checkpoint published at a URL (not on the model hub) is kept: torch's hub cache, by file name."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / url_name(url)


def standin_path(url: str, cache: Path | None = None) -> Path:
    """Where ``build-full`` writes a seeded random-weight stand-in for a URL checkpoint: ``<hub cache>/url-files/``
    (beside the full-size profile's hub repositories, never where the real download goes)."""
    from huggingface_hub import constants

    return Path(cache or constants.HF_HUB_CACHE) / "url-files" / url_name(url)


def url_file(url: str) -> Path:
    """The file at ``url``: the real download in torch's hub cache if present, else the full-size profile's
    stand-in in the hub cache, else downloaded now (refused offline with a sentence)."""
    import os

    import torch

    path = url_cache_path(url)
    if path.exists():
        return path
    standin = standin_path(url)
    if standin.exists():
        logger.warning("%s: using the full-size profile's random-weight stand-in (build-full)", url_name(url))
        return standin
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        name = url_name(url)
        raise FileNotFoundError(f"{name} is not downloaded and the hub is offline: run `python -m methods prefetch`.")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(path))
    return path
