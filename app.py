"""Diffusion image-editing demo hub: settings -> one resident backbone -> one tab per condition -> launch.

python app.py [--backbone auto|sd15|tiny|<hub id or folder>] [--host H] [--port P] [--share]
"""

from __future__ import annotations

import logging
import os
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

import methods  # noqa: E402, F401  (registers every method)
from demos import leaderboard, tabs  # noqa: E402
from demos.common import Hub  # noqa: E402
from demos.guard import HubBlocks  # noqa: E402
from demos.zerogpu import prepare_backbone_for_zerogpu  # noqa: E402
from methods.core.backbone import Backbone, BackboneUnavailable  # noqa: E402
from methods.core.loading import IncompleteCheckpoint  # noqa: E402
from methods.core.prefetch import preload_names  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402

TITLE = "Diffusion image-editing hub"
INTRO = (
    "Compare image-editing methods side by side on the same photo, seed and Stable Diffusion 1.5 backbone. "
    "Tabs follow the input conditions of the survey *Diffusion Model-Based Image Editing: A Survey* "
    "([Huang et al., 2024](https://arxiv.org/abs/2402.17525)); every method lists its paper, year and "
    "learning strategy."
)


def build_app(hub: Hub, settings: Settings) -> gr.Blocks:
    # Gradio's cache (uploads, served images and files) is swept as often as the run folders age out.
    sweep = max(1, round(settings.keep_seconds))
    with HubBlocks(title=TITLE, delete_cache=(max(1, sweep // 4), sweep)) as app:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        for tab in tabs():
            with gr.Tab(tab.CONDITION.title, id=tab.CONDITION.value):
                tab.create_demo(hub)
        with gr.Tab(leaderboard.TITLE, id="leaderboard"):
            leaderboard.create_demo(hub)
    app.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    return app


# The grid's captions wrap over the bottom of each cell instead of being cut to one line, so a method's name
# and parameters stay legible in the thumbnail.
CSS = """
.hub-grid .caption-label { white-space: normal; max-width: 100%; left: 0; right: 0; bottom: 0; opacity: 0.92;
  font-size: 12px; line-height: 1.25; max-height: 42%; overflow-y: auto; border-radius: 0; }
table.hub-sweep { border-collapse: collapse; }
table.hub-sweep th, table.hub-sweep td { border: 1px solid var(--border-color-primary); padding: 4px; }
table.hub-sweep img { max-width: 256px; display: block; }
"""


def launch_options(settings: Settings) -> dict[str, Any]:
    """What ``launch`` needs beyond host and port to stay bounded on a public Space (tests use it too)."""
    return {
        "show_error": False,  # only our sentences (gr.Error) reach the visitor; HubBlocks makes sure there is one
        "allowed_paths": ["assets", str(settings.output_dir)],  # the run folders: grids, cells, records
        "max_file_size": int(settings.max_file_mb * 2**20),
        "state_session_capacity": settings.max_sessions,
        "css": CSS,
    }


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("HUB_LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    settings = prepare_backbone_for_zerogpu(Settings.from_env(argv))  # unchanged off ZeroGPU
    quiet_libraries()
    try:
        backbone = Backbone(settings)
    except (BackboneUnavailable, IncompleteCheckpoint) as error:
        raise SystemExit(str(error)) from None
    try:
        preload = preload_names(settings.preload_addons)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    for name in preload:  # loaded before launch: on ZeroGPU packed with the base and moved to every worker's GPU
        logging.getLogger(__name__).info("preloading add-on %s", name)
        backbone.addon(name)
    hub = Hub(backbone, settings)
    build_app(hub, settings).launch(
        server_name=settings.host, server_port=settings.port, share=settings.share, **launch_options(settings)
    )


if __name__ == "__main__":
    main()
