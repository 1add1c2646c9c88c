"""Editing methods, one file each; importing this package registers them all.

Shared machinery lives in ``methods.core``. The registry is the only list of methods: tabs, tests and
scripts read it, so a new method file appears everywhere once it is imported here.
"""

from __future__ import annotations

from methods import (  # noqa: F401  (one module per method; its condition in the comment)
    clap_sdedit,  # audio
    controlnet_openpose,  # pose
    controlnet_scribble,  # sketch
    controlnet_seg,  # segmentation
    ddib_dit,  # class
    drag_diffusion,  # drag
    gligen,  # layout
    ip_adapter,  # reference
    sd_inpaint,  # mask
    sdedit,  # text
)
from methods.core.registry import get_method, list_methods, register  # noqa: F401
