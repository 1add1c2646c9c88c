"""Full builders for ``audiotoken``: BEATs at the checkpoint's config (12 layers x 768, DeepNorm, gated relative
positions) and the embedder at AudioToken's (2304 -> 768), seeded random weights, in ``<hub cache>/url-files/``
under the names ``methods.core.loading.url_file`` looks for (the two official URLs' last path parts)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from methods.core.fullsize import Writer


def build_audiotoken(folder: Path, writer: Writer) -> None:
    from methods.core import beats
    from methods.core.addons.audiotoken import BEATS_URL, EMBEDDER_URL
    from methods.core.loading import standin_path

    model = writer.build(lambda: beats.BEATs(beats.BEATsConfig()), 1200)
    checkpoint = {"cfg": asdict(model.config), "model": beats.to_official(model.state_dict())}
    writer.save_torch(checkpoint, folder / standin_path(BEATS_URL).name)
    embedder = writer.build(beats.FGAEmbedder, 1201)
    writer.save_torch(embedder.state_dict(), folder / standin_path(EMBEDDER_URL).name)
