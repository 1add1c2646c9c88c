"""The streamed comparison: the runner yields the grid after each method, Stop keeps what finished, the files
always cover what ran; the gallery, compare slider, history and records-JSON replay built on it."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

from demos import grid
from methods.core.examples import example_inputs
from methods.core.runner import iter_comparison, run_comparison
from methods.core.spec import InputError
from tests.helpers import assert_same_image

METHODS = ["sdedit", "ledits_pp", "instruct_pix2pix"]


@pytest.fixture(scope="module")
def inputs(backbone):
    return example_inputs("text", backbone, steps=2)


def test_each_method_is_yielded_as_it_finishes(backbone, inputs, tmp_path: Path) -> None:
    snapshots = list(iter_comparison(backbone, "text", METHODS, inputs, 3, out_dir=tmp_path))
    # the condition cell at once, then one more method each time (the last method's grid is the final one)
    assert [len(s.records) for s in snapshots] == [0, 1, 2, 3]
    assert [s.done for s in snapshots] == [False, False, False, True]
    assert [c.kind for c in snapshots[0].cells] == []  # no condition cell given here
    whole = run_comparison(backbone, "text", METHODS, inputs, 3, out_dir=tmp_path / "whole")
    assert [r["status"] for r in whole.records] == ["ok"] * 3
    for name in METHODS:  # the streamed run's last grid is the one-shot run's, bit for bit
        assert_same_image(snapshots[-1].result(name), whole.result(name))
    saved = json.loads((tmp_path / "records.json").read_text())
    assert [r["method"] for r in saved["records"]] == METHODS


def test_partial_files_cover_what_ran(backbone, inputs, tmp_path: Path) -> None:
    stream = iter_comparison(backbone, "text", METHODS, inputs, 0, out_dir=tmp_path)
    assert next(stream).records == []
    first = next(stream)
    saved = json.loads(first.files[1].read_text())
    assert [r["method"] for r in saved["records"]] == ["sdedit"] and first.files[0].exists()
    stream.close()


def test_stop_between_methods_keeps_the_finished_cells(backbone, inputs, tmp_path: Path) -> None:
    stop = threading.Event()
    kept = []
    for snapshot in iter_comparison(backbone, "text", METHODS, inputs, 0, out_dir=tmp_path, stop=stop):
        kept.append(snapshot)
        if snapshot.records:
            stop.set()  # the visitor presses Stop while the second method would start
    assert kept[-1].done and [r["method"] for r in kept[-1].records] == ["sdedit"]
    assert kept[-1].records[0]["status"] == "ok"
    assert json.loads((tmp_path / "records.json").read_text())["records"][0]["method"] == "sdedit"


def test_stop_inside_a_method_stops_it_at_its_next_step(backbone, inputs, tmp_path: Path) -> None:
    stop = threading.Event()

    def progress(fraction: float, text: str) -> None:
        if "step 1/" in text:
            stop.set()

    longer = example_inputs("text", backbone, steps=6)
    *_, last = iter_comparison(backbone, "text", ["sdedit", "ledits_pp"], longer, 0, progress=progress, stop=stop)
    assert [r["status"] for r in last.records] == ["stopped"]
    assert "Stopped by the visitor" in last.records[0]["message"]


def test_gallery_hides_extras_until_asked(backbone, inputs) -> None:
    comparison = run_comparison(backbone, "text", ["ledits_pp"], inputs, 0, condition_cell=(inputs.image, "source"))
    extras = grid.extras_count(comparison)
    assert extras >= 1  # LEDITS++ shows its implicit masks
    assert len(grid.gallery_items(comparison, extras=False)) == 2
    assert len(grid.gallery_items(comparison, extras=True)) == 2 + extras
    picture, caption = grid.gallery_items(comparison)[1]
    assert_same_image(Image.open(picture), comparison.result("ledits_pp"))  # the output's PNG, bit for bit
    assert caption.startswith("LEDITS++")
    kinds = [c.kind for c in comparison.cells]
    shown = [
        next(c.kind for c in comparison.cells if str(c.path) == path) for path, _ in grid.gallery_items(comparison)
    ]
    assert shown == sorted(kinds, key=lambda kind: kind == "extra")  # the results first, then the extras


def test_slider_pairs_the_source_with_any_cell(backbone, inputs) -> None:
    cell = (inputs.image, "source")
    comparison = run_comparison(backbone, "text", ["sdedit", "ledits_pp"], inputs, 0, condition_cell=cell)
    shown = grid.Shown.of(comparison)  # what the session keeps: paths, no pictures
    names = grid.slider_names(shown)
    assert names[0] == grid.SOURCE and any(n.startswith("SDEdit") for n in names)
    sdedit = next(n for n in names if n.startswith("SDEdit"))
    left, right = grid.slider_pair(shown, grid.SOURCE, sdedit)
    assert_same_image(right, comparison.result("sdedit"))  # the saved PNG is the output, bit for bit
    assert_same_image(left, inputs.image)
    assert grid.selected_name(shown, 1, extras=False) == sdedit  # the first method's cell, after the condition
    assert grid.selected_name(shown, 0, extras=False) is None  # the condition cell is the source already
    assert grid.slider_pair(shown, grid.SOURCE, "no such cell") is None
    items = grid.shown_items(shown, extras=True)
    assert [caption for _, caption in items] == [c.caption for c in comparison.cells]


def test_history_keeps_the_newest_runs_and_forgets_swept_folders(backbone, inputs, tmp_path: Path) -> None:
    runs = [grid.Shown.of(run_comparison(backbone, "text", ["sdedit"], inputs, 0, out_dir=tmp_path / "a"))]
    runs.append(grid.Shown.of(run_comparison(backbone, "text", ["sdedit"], inputs, 1, out_dir=tmp_path / "b")))
    past: list[grid.Run] = []
    for index in range(grid.HISTORY_SIZE + 3):
        past = grid.remember(past, grid.Run([index], runs[index % 2], f"run {index}"))
    assert len(past) == grid.HISTORY_SIZE
    items = grid.history_items(past)
    assert items[0][1] == f"run {grid.HISTORY_SIZE + 2}"  # newest first
    assert grid.history_run(past, 0).values == [grid.HISTORY_SIZE + 2]
    assert grid.history_run(past, 99) is None
    shutil.rmtree(tmp_path / "a")  # the run folders age out (HUB_KEEP_SECONDS): their entries go too
    past = grid.remember(past, grid.Run([0], runs[1], "again"))
    assert all(run.shown is runs[1] for run in past)
    assert len(grid.history_items(past)) == len(past) == 7  # the strip's index i is entry i, newest first
    assert grid.history_run(past, 0).title == "again"


def test_kept_values_hold_paths_not_pictures(inputs, tmp_path: Path) -> None:
    kept = grid.keep_values([inputs.image, "snow", 3], tmp_path / "inputs")
    assert kept[1:] == ["snow", 3] and isinstance(kept[0], str)
    assert_same_image(Image.open(kept[0]).convert("RGB"), inputs.image.convert("RGB"))


def test_replay_round_trip(tmp_path: Path) -> None:
    names = ["image", "prompt", "methods", "seed", "sdedit__strength"]
    block = grid.replay_block("text", names, [object(), "snow", ["sdedit"], 7, 0.6])
    assert block["replay"]["not_stored"] == ["image"]
    path = tmp_path / "records.json"
    path.write_text(json.dumps({"records": [], **block}))
    values, media = grid.read_replay(path, "text", names)
    assert values == {"prompt": "snow", "methods": ["sdedit"], "seed": 7, "sdedit__strength": 0.6}
    assert media == ["image"]


@pytest.mark.parametrize(
    ("content", "tab", "words"),
    [
        ("not json", "text", "not a records JSON"),
        (json.dumps({"records": []}), "text", "no replay block"),
        (json.dumps({"replay": {"tab": "mask", "values": {}}}), "text", "belongs to the .mask. tab"),
    ],
)
def test_replay_refuses_other_files_with_a_sentence(tmp_path: Path, content: str, tab: str, words: str) -> None:
    path = tmp_path / "records.json"
    path.write_text(content)
    with pytest.raises(InputError, match=words):
        grid.read_replay(path, tab, ["prompt"])
    with pytest.raises(InputError, match="Upload a records JSON"):
        grid.read_replay(None, tab, ["prompt"])


def test_replay_restores_only_plain_checked_settings() -> None:
    import gradio as gr

    from demos.run import replay_values

    with gr.Blocks():
        components = {
            "image": gr.Image(),
            "prompt": gr.Textbox(),
            "methods": gr.CheckboxGroup(choices=["sdedit", "ledits_pp"]),
            "seed": gr.Number(),
            "steps": gr.Slider(1, 100),
            "sdedit__strength": gr.Slider(0, 1),
            "line_detector": gr.Dropdown(choices=["canny", "hed"]),
        }
    restored = {
        "image": "/etc/passwd",  # a path in a JSON must never reach a picture widget
        "prompt": "snow",
        "methods": ["sdedit", "no_such_method"],
        "seed": "abc",
        "steps": 12,
        "sdedit__strength": 7,
        "line_detector": "not a detector",
        "gone": 1,
    }
    kept, refused = replay_values(restored, components, "text")
    assert kept == {"prompt": "snow", "methods": ["sdedit"], "steps": 12}
    assert sorted(refused) == ["gone", "image", "line_detector", "sdedit__strength", "seed"]


def test_sweep_run_folders_are_pruned_like_runs(tmp_path: Path) -> None:
    from methods.core.outputs import RunFolders

    folders = RunFolders(tmp_path, keep=2, max_age=3600)
    made = [folders.new("textsweep") for _ in range(4)]
    assert [p.exists() for p in made] == [False, False, True, True]


def test_a_huge_replay_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_text(" " * (grid.MAX_REPLAY_BYTES + 1))
    with pytest.raises(InputError, match="too large"):
        grid.read_replay(path, "text", ["prompt"])
