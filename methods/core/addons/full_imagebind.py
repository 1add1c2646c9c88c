"""Full builders for ``imagebind``: imagebind_huge's audio tower at its real config (12 blocks x 768 -> 1024),
seeded random weights, as ``imagebind_huge.pth`` (audio keys only) in ``<hub cache>/url-files/``, which the loader reads
when the authors' file has not been downloaded (``methods.core.loading.url_file``)."""

from __future__ import annotations

from pathlib import Path

from methods.core.fullsize import Writer


def build_imagebind_audio(folder: Path, writer: Writer) -> None:
    from methods.core import imagebind

    tower = writer.build(lambda: imagebind.ImageBindAudio(imagebind.AudioTowerConfig()), 1100)
    writer.save_torch(tower.state_dict(), folder / imagebind.WEIGHTS_FILE)
