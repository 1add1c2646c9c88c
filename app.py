"""Diffusion image-editing demo hub: settings -> one resident backbone -> one tab per condition -> launch.

python app.py [--backbone auto|sd15|tiny|<hub id or folder>] [--host H] [--port P] [--share]
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

import methods  # noqa: E402, F401  (registers every method)
from demos import leaderboard, tabs  # noqa: E402
from demos.common import Hub  # noqa: E402
from methods.core.backbone import Backbone  # noqa: E402
from methods.core.settings import Settings, quiet_libraries  # noqa: E402

TITLE = "Diffusion image-editing hub"
INTRO = (
    "Compare image-editing methods side by side on the same photo, seed and Stable Diffusion 1.5 backbone. "
    "Tabs follow the input conditions of the survey *Diffusion Model-Based Image Editing: A Survey* "
    "([Huang et al., 2024](https://arxiv.org/abs/2402.17525)); every method lists its paper, year and "
    "learning strategy."
)


def build_app(hub: Hub, settings: Settings) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        for tab in tabs():
            with gr.Tab(tab.CONDITION.title, id=tab.CONDITION.value):
                tab.create_demo(hub)
        with gr.Tab(leaderboard.TITLE, id="leaderboard"):
            leaderboard.create_demo(hub)
    app.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    return app


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("HUB_LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(argv)
    quiet_libraries()
    hub = Hub(Backbone(settings))
    build_app(hub, settings).launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        show_error=False,
        allowed_paths=["assets"],
    )


if __name__ == "__main__":
    main()
