"""EditEval runner, its tables and resumption, the CLI, and the leaderboard tab that reads the results."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from evaluation import editeval as E
from evaluation.__main__ import main as cli_main
from methods.core.settings import Settings
from methods.core.spec import InputError
from tests.conftest import make_photo

METRICS = ("clip_score", "lpips", "ssim", "psnr")


def write_dataset(folder: Path, blank_prompt: bool = False) -> Path:
    """Two usable items (two tasks), one with a null file and one whose file is missing."""
    folder.mkdir(parents=True, exist_ok=True)
    make_photo(160, seed=1).resize((160, 120)).save(folder / "a.png")
    make_photo(128, seed=2).save(folder / "b.jpg")
    item = {"source_prompt": "a house on a meadow", "instruction": "make it winter"}
    items = [
        {**item, "task": "style_change", "index": 1, "target_prompt": "a house in the snow", "file": "a.png"},
        {
            **item,
            "task": "object_removal",
            "index": 2,
            "target_prompt": "" if blank_prompt else "a meadow",
            "file": "b.jpg",
        },
        {**item, "task": "object_removal", "index": 3, "target_prompt": "x", "file": None, "missing_reason": "gone"},
        {**item, "task": "style_change", "index": 4, "target_prompt": "x", "file": "nowhere.png"},
    ]
    (folder / "manifest.json").write_text(json.dumps({"name": "mini", "items": items}))
    return folder


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def results(backbone, tmp_path_factory):
    root = tmp_path_factory.mktemp("editeval")
    dataset, out = write_dataset(root / "data"), root / "out"
    summary = E.evaluate(backbone, dataset, out, ["sdedit"], steps=2, metrics=METRICS, progress=False)
    return dataset, out, summary


def test_runner_writes_outputs_scores_and_tables(results):
    dataset, out, summary = results
    assert summary.ran == ["style_change_1", "object_removal_2"] and summary.reused == []
    assert dict(summary.skipped) == {
        "object_removal_3": "no image file (gone)",
        "style_change_4": "image file nowhere.png is missing",
    }
    for item in summary.ran:
        for name in ("source.png", "sdedit.png", "grid.png", "records.json", "scores.json"):
            assert (out / "items" / item / name).is_file(), (item, name)
    run = json.loads((out / "run.json").read_text())
    assert run["backbone"]["profile"] == "tiny" and run["backbone"]["working_size"] == 128
    assert run["settings"]["steps"] == 2 and run["settings"]["methods"] == ["sdedit"]
    assert [s["item"] for s in run["skipped_items"]] == ["object_removal_3", "style_change_4"]
    rows = _read(out / "scores.csv")
    assert [(r["item"], r["method"], r["status"]) for r in rows] == [
        ("style_change_1", "sdedit", "ok"),
        ("object_removal_2", "sdedit", "ok"),
    ]
    assert rows[0]["seed"] == str(E.item_seed("style_change_1"))
    assert json.loads((out / "scores.json").read_text())[0]["ssim"] == pytest.approx(float(rows[0]["ssim"]))
    # The table is the per-item scores aggregated: each task has one item (std 0), "all" has both.
    table = {(r["metric"], r["method"], r["task"]): r for r in _read(out / "table.csv")}
    assert set(table) == {
        (m, "sdedit", t) for m in (*METRICS, "seconds") for t in ("style_change", "object_removal", "all")
    }
    for metric in METRICS:
        a, b = float(rows[0][metric]), float(rows[1][metric])
        assert float(table[(metric, "sdedit", "style_change")]["mean"]) == pytest.approx(a)
        assert float(table[(metric, "sdedit", "style_change")]["std"]) == 0.0
        assert float(table[(metric, "sdedit", "all")]["mean"]) == pytest.approx((a + b) / 2)
        assert float(table[(metric, "sdedit", "all")]["std"]) == pytest.approx(abs(a - b) / 2)
        assert table[(metric, "sdedit", "all")]["n"] == "2"
    markdown = (out / "table.md").read_text()
    ssim_all = table[("ssim", "sdedit", "all")]
    assert f"{float(ssim_all['mean']):.3f} ± {float(ssim_all['std']):.3f}" in markdown
    assert "| method | style_change | object_removal | all |" in markdown
    assert "2 item(s) skipped (no image): object_removal_3, style_change_4." in markdown


def test_rerun_skips_finished_items_and_reproduces_a_removed_one(results, backbone, monkeypatch):
    dataset, out, first = results
    before = _read(out / "scores.csv")

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished item was run again")

    with monkeypatch.context() as patch:
        patch.setattr(E, "run_comparison", must_not_run)
        again = E.evaluate(backbone, dataset, out, ["sdedit"], steps=2, metrics=METRICS, progress=False)
    assert again.ran == [] and again.reused == ["style_change_1", "object_removal_2"]
    assert _read(out / "scores.csv") == before
    # Removing one item's scores reruns only that item, with the same seed and so the same scores.
    (out / "items" / "object_removal_2" / "scores.json").unlink()
    third = E.evaluate(backbone, dataset, out, ["sdedit"], steps=2, metrics=METRICS, progress=False)
    assert third.ran == ["object_removal_2"] and third.reused == ["style_change_1"]
    after = _read(out / "scores.csv")
    for old, new in zip(before, after, strict=True):
        for metric in METRICS:
            assert float(new[metric]) == pytest.approx(float(old[metric]), abs=1e-6)
    # Different settings (steps) make the saved items stale: they run again.
    with monkeypatch.context() as patch:
        patch.setattr(E, "run_comparison", must_not_run)
        with pytest.raises(AssertionError, match="run again"):
            E.evaluate(backbone, dataset, out, ["sdedit"], steps=3, metrics=METRICS, progress=False)


def test_method_lacking_an_input_is_recorded_as_skipped(backbone, tmp_path):
    dataset = write_dataset(tmp_path / "data", blank_prompt=True)
    summary = E.evaluate(
        backbone,
        dataset,
        tmp_path / "out",
        ["sdedit"],
        tasks=["object_removal"],
        steps=2,
        metrics=("ssim",),
        progress=False,
    )
    (row,) = summary.rows
    assert row["status"] == "skipped" and "target prompt" in row["message"] and "ssim" not in row
    assert (tmp_path / "out" / "items" / "object_removal_2" / "grid.png").is_file()
    assert _read(tmp_path / "out" / "table.csv") == []  # nothing scored, nothing averaged
    assert (
        "| object_removal_2 | SDEdit | skipped | SDEdit needs a target prompt. |"
        in (tmp_path / "out" / "table.md").read_text()
    )


def test_aggregate_by_hand():
    rows = [
        {"method": "m1", "task": "t1", "status": "ok", "x": 1.0},
        {"method": "m1", "task": "t1", "status": "ok", "x": 2.0},
        {"method": "m1", "task": "t1", "status": "ok", "x": 3.0},
        {"method": "m1", "task": "t2", "status": "ok", "x": 4.0},
        {"method": "m1", "task": "t2", "status": "error", "x": 100.0},  # failed: not counted
        {"method": "m2", "task": "t1", "status": "ok", "x": 10.0},
        {"method": "m2", "task": "t2", "status": "ok"},  # metric missing: not counted
        {"method": "m2", "task": "t2", "status": "ok", "x": math.nan},
    ]
    table = {(r["method"], r["task"]): (r["mean"], r["std"], r["n"]) for r in E.aggregate(rows, ["x"])}
    assert table[("m1", "t1")] == pytest.approx((2.0, math.sqrt(2 / 3), 3))
    assert table[("m1", "t2")] == (4.0, 0.0, 1)
    assert table[("m1", "all")] == pytest.approx((2.5, math.sqrt(1.25), 4))
    assert table[("m2", "t1")] == (10.0, 0.0, 1) and table[("m2", "all")] == (10.0, 0.0, 1)
    assert ("m2", "t2") not in table
    markdown = E.markdown_tables(E.aggregate(rows, ["x"]), {"m1": "Method one"}, [])
    assert "| Method one | 2.000 ± 0.816 | 4.000 ± 0.000 | 2.500 ± 1.118 |" in markdown
    assert "| m2 | 10.000 ± 0.000 | — | 10.000 ± 0.000 |" in markdown


def test_item_seed_is_stable_and_methods_are_checked():
    assert E.item_seed("object_addition_1") == 743490414  # crc32, not Python's salted hash
    with pytest.raises(InputError, match="text-tab"):
        E.check_methods(["sd_inpaint"])
    with pytest.raises(KeyError, match="known methods"):
        E.check_methods(["no_such_method"])


def test_cli_evaluate_and_table(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["evaluate", "--dataset", str(dataset), "--out", str(out), "--backbone", "tiny", "--device", "cpu"]
    argv += ["--methods", "sdedit", "--steps", "2", "--limit", "1", "--metrics", "psnr", "--no-progress"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "## PSNR (dB) ↑" in printed and "| SDEdit |" in printed
    assert json.loads((out / "run.json").read_text())["items_scored"] == ["style_change_1"]
    assert cli_main(["table", "--out", str(out)]) == 0
    assert capsys.readouterr().out == (out / "table.md").read_text()


def test_leaderboard_reads_the_results(results, monkeypatch):
    from demos import leaderboard as L

    _, out, _ = results
    assert L.metrics_in(out) == [*METRICS, "seconds"]
    board = L.leaderboard(out, "ssim")
    table = {(r["task"]): r for r in _read(out / "table.csv") if r["metric"] == "ssim"}
    assert list(board.columns) == ["method", "all", "± std", "n", "style_change", "object_removal"]
    assert board.loc[0, "method"] == "sdedit" and board.loc[0, "n"] == 2
    assert board.loc[0, "all"] == pytest.approx(float(table["all"]["mean"]), abs=1e-4)
    assert board.loc[0, "object_removal"] == pytest.approx(float(table["object_removal"]["mean"]), abs=1e-4)
    items = L.items_table(out, "psnr")
    assert list(items["item"]) == ["style_change_1", "object_removal_2"] and list(items.columns)[2:] == ["sdedit"]
    grid = L.item_grid(out, "object_removal_2")
    assert grid is not None and grid.size == (512, 335)  # two 256 px cells under their 79 px headers
    assert L.item_grid(out, "../../etc") is None
    event = gr.SelectData(None, {"index": [1, 0], "value": "object_removal_2", "row_value": list(items.iloc[1])})
    root = out.parent
    image, caption = L.show_grid(root, str(out), event)
    assert np.array_equal(np.asarray(image), np.asarray(grid)) and "object_removal_2" in caption
    update, summary, board_psnr, _ = L.load(root, str(out), "psnr")
    assert update["value"] == "psnr" and ("PSNR (dB) ↑", "psnr") in update["choices"]
    assert "tiny" in summary and board_psnr.loc[0, "n"] == 2
    assert L.load(root, out.name, "not-a-metric")[0]["value"] == METRICS[0]  # relative to the root works too
    with pytest.raises(gr.Error, match="No results"):
        L.results_folder(str(out / "nothing"), root)
    # Outside the results root: refused, and the message does not tell whether the folder exists.
    for outside in (str(root.parent), "/", "/etc", str(out / ".." / ".." / "nowhere"), "../../.."):
        with pytest.raises(gr.Error, match="only from folders inside the results root") as refused:
            L.results_folder(outside, out)
        assert "/" not in str(refused.value).replace(f"`{out.name}/`", "")  # no server path in the message
    # The tab builds, filled from the default folder.
    monkeypatch.setattr(L, "DEFAULT_FOLDER", out)
    hub = SimpleNamespace(settings=Settings(results_root=root))
    with gr.Blocks() as demo:
        L.create_demo(hub)
    values = [c.value for c in demo.blocks.values() if isinstance(c, gr.Dataframe)]
    assert any(v and "sdedit" in json.dumps(v, default=str) for v in values)
