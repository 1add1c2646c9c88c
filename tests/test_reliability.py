"""Long uptime on a public Space: Runs and model previews sent at once on a fresh app load every add-on once and
all succeed; the same seed gives bit-identical images alone, interleaved with other requests and on another
backbone instance; a full queue refuses Runs with a clear message but not the drawing previews; one request's
time on the GPU is bounded; run folders are deleted by count and age."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gradio_client import Client
from gradio_client.utils import Status
from PIL import Image

from demos import common
from demos.api_examples import ASSETS, REQUESTS
from methods.core.backbone import Backbone
from methods.core.outputs import RunFolders
from methods.core.runner import run_comparison
from methods.core.spec import EditInputs
from tests.conftest import tiny_settings
from tests.helpers import served
from tests.test_hostile import RawClient

HOUSE = str(ASSETS / "house.png")


def fn_index(app: Any, name: str, first_input_label: str | None = None) -> int:
    """The index of the event handler called ``name`` (the browser calls private handlers by index)."""
    for index, fn in app.fns.items():
        if fn.name == name and (first_input_label is None or getattr(fn.inputs[0], "label", None) == first_input_label):
            return index
    raise KeyError(name)


def queue_call(url: str, index: int, data: list[Any], timeout: float = 300) -> dict[str, Any]:
    """What the browser does for a queued event: join the queue, then read the event stream to its end."""
    session = uuid.uuid4().hex
    body = {"data": data, "fn_index": index, "session_hash": session, "event_data": None, "trigger_id": None}
    httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=60).raise_for_status()
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=timeout) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line.split(":", 1)[1])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the event stream ended without a result")


def run(url: str, api: str, **values: Any) -> tuple[Any, ...]:
    return Client(url, verbose=False).predict(**{**REQUESTS[api], **values}, api_name=f"/{api}")


def statuses(result: tuple[Any, ...]) -> list[str]:
    return [row[1] for row in result[1]["data"]]


def result_pixels(result: tuple[Any, ...]) -> np.ndarray:
    return np.asarray(Image.open(result[0][1]["image"]).convert("RGB"))


@pytest.fixture(scope="module")
def fresh() -> Iterator[tuple[str, Any, Backbone]]:
    """The app on a backbone that has loaded no add-on yet (as after a restart)."""
    backbone = Backbone(tiny_settings())
    with served(backbone) as (url, app):
        yield url, app, backbone


def test_runs_and_previews_at_once_load_each_addon_once(fresh) -> None:
    url, app, backbone = fresh
    raw = RawClient(url)
    photo = raw.file(HOUSE)
    previews = [  # the four model previews of the race, as the browser sends them
        (fn_index(app, "detect_into_keypoints"), [None, photo]),
        (fn_index(app, "extract_map"), [photo]),
        (fn_index(app, "on_prompts"), [photo, "[[0.5, 0.5, 1]]", "", 0, 0]),
        (fn_index(app, "extract_into_canvas"), [photo, None, "lineart"]),
    ]
    runs = [
        ("pose", {"methods": ["controlnet_openpose", "t2i_adapter_openpose"], "steps": 2}),
        (
            "segmentation",
            {
                "map_source": "segment the source photo",
                "region_mode": "none",
                "methods": ["controlnet_seg", "t2i_adapter_seg"],
                "steps": 2,
            },
        ),
        ("mask", {"methods": ["sd_inpaint", "blended_latent"], "steps": 2}),
    ]
    with ThreadPoolExecutor(max_workers=len(previews) + len(runs)) as pool:
        preview_futures = [pool.submit(queue_call, url, index, data) for index, data in previews]
        run_futures = [pool.submit(run, url, api, **values) for api, values in runs]
        preview_results = [f.result(timeout=600) for f in preview_futures]
        run_results = [f.result(timeout=600) for f in run_futures]
    for message in preview_results:  # random OpenPose weights may find no person: that sentence is an answer
        assert message["success"] or "found no person" in str(message["output"]), message["output"]
    for result in run_results:
        assert statuses(result) and all(s == "ok" for s in statuses(result)), result[1]["data"]
    log = backbone.load_log
    assert len(log) == len(set(log)), f"an add-on was loaded more than once: {log}"
    assert {"openpose", "ade20k_segmenter", "sam", "annotator_lineart", "controlnet_openpose"} <= set(log)


def test_same_seed_same_pixels_alone_interleaved_and_on_another_backbone(fresh, backbone) -> None:
    url = fresh[0]
    request = {"methods": ["sdedit", "instruct_pix2pix"], "steps": 2}
    alone = run(url, "text", seed=7, **request)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(run, url, "text", seed=seed, **request) for seed in (7, 8, 7)]
        interleaved = [f.result(timeout=600) for f in futures]
    with served(backbone) as (other_url, _):  # another Backbone instance, loaded from the same files
        restarted = run(other_url, "text", seed=7, **request)
    reference = result_pixels(alone)
    for same in (interleaved[0], interleaved[2], restarted):
        assert np.array_equal(result_pixels(same), reference)
        assert same[3] == 7
    assert not np.array_equal(result_pixels(interleaved[1]), reference)


def test_a_full_queue_refuses_runs_clearly_and_still_draws(backbone, monkeypatch) -> None:
    started, release = threading.Event(), threading.Event()
    real = common.iter_comparison

    def held(*args: Any, **kwargs: Any) -> Any:  # keeps the GPU slot busy until the test lets go
        started.set()
        release.wait(60)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(common, "iter_comparison", held)
    settings = dataclasses.replace(tiny_settings(), queue_size=1)
    request = {**REQUESTS["text"], "methods": ["sdedit"], "steps": 2}
    with served(backbone, settings) as (url, app):
        busy = Client(url, verbose=False).submit(**request, api_name="/text")
        assert started.wait(60)
        waiting = Client(url, verbose=False).submit(**request, api_name="/text")
        deadline = time.monotonic() + 60
        while waiting.status().code != Status.IN_QUEUE and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(Exception, match="Queue is full") as refused:  # noqa: B017 - gradio_client's own error
            Client(url, verbose=False).predict(**request, api_name="/text")
        assert "try again" in str(refused.value).lower()
        # A drawing preview (queue=False) answers at once although the queue is full.
        index = fn_index(app, "redraw", "Boxes (JSON)")
        boxes = json.dumps([{"phrase": "a car", "box": [0.1, 0.1, 0.6, 0.6]}])
        body = {"data": [boxes, None], "fn_index": index, "session_hash": uuid.uuid4().hex}
        drawn = httpx.post(f"{url}gradio_api/run/predict", json=body, timeout=30)
        assert drawn.status_code == 200, drawn.text
        assert drawn.json()["data"][0]["path"]  # the canvas with the box drawn
        release.set()
        assert statuses(busy.result(timeout=120)) == ["ok"]
        assert statuses(waiting.result(timeout=120)) == ["ok"]


def test_one_request_holds_the_gpu_for_at_most_its_budget(backbone, photo) -> None:
    inputs = EditInputs(image=photo, prompt="a house in the snow", source_prompt="a house", steps=4)
    comparison = run_comparison(backbone, "text", ["sdedit", "ledits_pp"], inputs, seed=0, time_budget=1e-6)
    first, second = comparison.records
    assert first["status"] == "stopped" and "used its 1e-06 s" in first["message"]
    assert second["status"] == "skipped" and second["message"].startswith("Not run:")
    assert len(comparison.cells) == 2


def test_run_folders_are_deleted_by_count_and_age(tmp_path: Path) -> None:
    folders = RunFolders(tmp_path / "runs", keep=3, max_age=3600)
    made = []
    for _ in range(5):
        made.append(folders.new("text"))
        (made[-1] / "grid.png").write_bytes(b"x" * 10)
    kept = folders.folders()
    assert kept == made[-3:] and all(not m.exists() for m in made[:2])
    (tmp_path / "runs" / "not-a-run").mkdir()  # anything else in the folder is never touched
    old = kept[0]
    past = time.time() - 7200
    os.utime(old, (past, past))
    folders.prune()
    assert not old.exists() and (tmp_path / "runs" / "not-a-run").is_dir()
    assert folders.usage() == (2, 20)


def test_the_app_writes_runs_under_its_own_folder(backbone, tmp_path: Path) -> None:
    settings = dataclasses.replace(tiny_settings(), output_dir=tmp_path, keep_runs=2)
    with served(backbone, settings) as (url, _):
        for seed in range(3):
            result = run(url, "text", methods=["sdedit"], steps=2, seed=seed)
            assert statuses(result) == ["ok"]
    assert len(RunFolders(tmp_path).folders()) == 2
