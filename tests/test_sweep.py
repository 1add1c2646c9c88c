"""The X/Y sweep: typed axis values, the plan of distinct runs, cells equal to a comparison of that method alone,
streaming with Stop, the PNG + JSON and the HTML table."""

from __future__ import annotations

import dataclasses
import json
import threading
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from demos.sweep import sweep_html
from methods.core import sweep as sw
from methods.core.examples import example_inputs
from methods.core.runner import run_comparison
from methods.core.spec import InputError
from tests.helpers import assert_same_image

CHEAP = ("sdedit", "instruct_pix2pix")  # two cheap text methods; only SDEdit has a "strength"


@pytest.fixture(scope="module")
def inputs(backbone):
    return example_inputs("text", backbone, steps=2)


def axis(key: str, text: str, chosen: tuple[str, ...] = ()) -> sw.Axis:
    return sw.parse_axis(key, text, "text", chosen)


# -- parsing ---------------------------------------------------------------------------------------------------


def test_axis_choices_list_shared_settings_then_every_parameter() -> None:
    from methods.core.registry import list_methods

    choices = sw.axis_choices("text")
    assert choices[:4] == [("Method", "method"), ("Seed", "seed"), ("Steps", "steps"), ("Guidance scale", "guidance")]
    assert ("SDEdit: strength", "sdedit.strength") in choices
    assert len(choices) == 4 + sum(len(m.params) for m in list_methods("text"))


@pytest.mark.parametrize(
    ("key", "text", "values"),
    [
        ("seed", "1, 2, 5", (1, 2, 5)),
        ("seed", "1-9 (+2)", (1, 3, 5, 7, 9)),
        ("seed", "1:9:2", (1, 3, 5, 7, 9)),
        ("seed", "0, 4-6", (0, 4, 5, 6)),  # a list may mix values and ranges; a range without a step counts by 1
        ("steps", "10-40 (+10)", (10, 20, 30, 40)),
        ("guidance", "1.5, 7.5", (1.5, 7.5)),
        ("sdedit.strength", "0.5-1.0 (+0.25)", (0.5, 0.75, 1.0)),
        ("sdedit.strength", "0.1-0.3 (+0.1)", (0.1, 0.2, 0.3)),  # no 0.30000000000000004, no lost end
        ("ledits_pp.implicit_mask", "Attention, noise", ("attention", "noise")),
        ("ledits_pp.split_concepts", "true, false", (True, False)),
        ("prompt_to_prompt.reweight_words", "snow, ice | roof", ("snow, ice", "roof")),  # text values split on |
        ("method", "sdedit, InstructPix2Pix", ("sdedit", "instruct_pix2pix")),  # registry names or labels
        ("method", "", CHEAP),  # empty: the checked methods
    ],
)
def test_parse_axis_values(key: str, text: str, values: tuple) -> None:
    parsed = axis(key, text, CHEAP)
    assert parsed.values == values
    assert [type(v) for v in parsed.values] == [type(v) for v in values]


def test_float_and_negative_ranges() -> None:
    assert axis("ledits_pp.edit_guidance_scale", "0.5-1.5 (+0.5)").values == (0.5, 1.0, 1.5)
    assert axis("guidance", "1.5-2.5 (+0.5)").values == (1.5, 2.0, 2.5)
    assert axis("guidance", "1.5:2.5:0.5").values == (1.5, 2.0, 2.5)
    assert axis("prompt_to_prompt.reweight_factor", "-1-1 (+1)").values == (-1.0, 0.0, 1.0)
    assert axis("prompt_to_prompt.reweight_factor", "-2--1 (+0.5)").values == (-2.0, -1.5, -1.0)


def test_labels_and_titles() -> None:
    assert axis("seed", "3").label(3) == "seed 3"
    assert axis("steps", "10").label(10) == "steps 10"
    assert axis("guidance", "7.5").label(7.5) == "guidance 7.5"
    strength = axis("sdedit.strength", "0.6")
    assert (strength.label(0.6), strength.title) == ("strength 0.6", "SDEdit: strength")
    assert axis("method", "sdedit").label("sdedit") == "SDEdit"
    assert axis("ledits_pp.split_concepts", "true").label(True) == "split concepts true"


@pytest.mark.parametrize(
    ("key", "text", "words"),
    [
        ("nonsense", "1", "no sweep axis"),
        ("", "1", "Choose what the axis varies"),
        ("sd_inpaint.strength", "1", "no sweep axis"),  # a parameter of another tab's method
        ("seed", "", "Type the values"),
        ("seed", " , ", "Type the values"),
        ("seed", "1, 1", "twice"),
        ("seed", "1-9 (+0)", "above 0"),
        ("seed", "1:9:0", "above 0"),
        ("seed", "1-9 (+-2)", "above 0"),
        ("seed", "9-1", "smaller number first"),
        ("seed", "0-100", "at most 8"),
        ("seed", "0-1000000000000", "at most 8"),  # refused before expanding
        ("seed", "1, 2, 3, 4, 5, 6, 7, 8, 9", "at most 8"),
        ("seed", "-1", "between 0 and 2147483647"),
        ("seed", "1.5", "whole numbers"),
        ("seed", "abc", "must be a number"),
        ("steps", "0, 5", "between 1 and 100"),
        ("guidance", "0.5", "between 1 and 20"),
        ("guidance", "nan", "finite"),
        ("sdedit.strength", "2", "between"),
        ("ledits_pp.implicit_mask", "square", "one of intersect, attention, noise"),
        ("ledits_pp.split_concepts", "maybe", "true or false"),
        ("method", "sd_inpaint", "belongs to the Mask tab"),
        ("method", "no_such_method", "no method"),
        ("method", "sdedit, SDEdit", "twice"),
    ],
)
def test_parse_errors_are_sentences(key: str, text: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        axis(key, text)
    message = str(caught.value)
    assert words in message
    assert message[0].isupper() or message[0] == "“", message
    assert message.endswith("."), message
    assert "Traceback" not in message and "\n" not in message and "Error" not in message


def test_empty_method_axis_without_checked_methods() -> None:
    with pytest.raises(InputError, match="Check the methods"):
        axis("method", "", ())


def test_text_that_is_not_text() -> None:
    with pytest.raises(InputError, match="must be text"):
        sw.parse_axis("seed", 5, "text", ())  # type: ignore[arg-type]


# -- planning --------------------------------------------------------------------------------------------------


def test_method_by_parameter_reuses_the_methods_without_it() -> None:
    x, y = axis("sdedit.strength", "0.4, 0.6, 0.8"), axis("method", "sdedit, instruct_pix2pix")
    cells = sw.plan(x, y, (), seed=3)
    assert [(c.row, c.column) for c in cells] == [(r, c) for r in range(2) for c in range(3)]
    assert len({c.run for c in cells}) == 4  # three SDEdit strengths + one InstructPix2Pix run
    assert [c.run.params for c in cells[:3]] == [(("strength", v),) for v in (0.4, 0.6, 0.8)]
    assert [c.same_as for c in cells] == [None, None, None, None, (1, 0), (1, 0)]
    assert {c.run for c in cells[3:]} == {sw.Run("instruct_pix2pix", 3)}


def test_without_method_axis() -> None:
    seeds = axis("seed", "0, 1")
    # a parameter axis runs its own method only, whatever else is checked
    cells = sw.plan(axis("sdedit.strength", "0.5, 0.7"), seeds, CHEAP, seed=0)
    assert {c.run.method for c in cells} == {"sdedit"} and len({c.run for c in cells}) == 4
    assert [c.run for c in sw.plan(seeds, None, ("sdedit",), seed=9)] == [sw.Run("sdedit", 0), sw.Run("sdedit", 1)]
    for chosen in (CHEAP, ()):
        with pytest.raises(InputError, match=r"^Choose Method as one axis, or check one method\.$"):
            sw.plan(seeds, axis("steps", "2, 3"), chosen, seed=0)


def test_plan_refusals() -> None:
    with pytest.raises(InputError, match="same"):
        sw.plan(axis("seed", "0, 1"), axis("seed", "2, 3"), ("sdedit",), seed=0)
    with pytest.raises(InputError, match="add SDEdit to the Method values"):
        sw.plan(axis("sdedit.strength", "0.5, 0.7"), axis("method", "instruct_pix2pix"), (), seed=0)
    with pytest.raises(InputError, match="two methods"):
        sw.plan(axis("sdedit.strength", "0.5"), axis("instruct_pix2pix.image_guidance_scale", "1.5"), (), seed=0)


def test_at_most_36_distinct_runs() -> None:
    six = axis("seed", "0-5"), axis("steps", "1-6")
    assert len(sw.plan(*six, ("sdedit",), seed=0)) == 36
    with pytest.raises(InputError, match=r"needs 49 runs; at most 36"):
        sw.plan(axis("seed", "0-6"), axis("steps", "1-7"), ("sdedit",), seed=0)
    # reused cells do not count: 8 strengths × 2 methods is 9 distinct runs, not 16
    cells = sw.plan(axis("sdedit.strength", "0.2-0.9 (+0.1)"), axis("method", "sdedit, instruct_pix2pix"), (), 0)
    assert (len(cells), len({c.run for c in cells})) == (16, 9)


# -- running ---------------------------------------------------------------------------------------------------


def alone(backbone, inputs, method: str, seed: int, params: dict | None = None) -> Image.Image:
    """The comparison of one method alone: what a sweep cell must equal bit for bit."""
    return run_comparison(backbone, "text", [method], inputs, seed, {method: params or {}}).result(method)


@pytest.fixture(scope="module")
def seed_by_method(backbone, inputs, tmp_path_factory):
    """X = seed 0, 1, 2; Y = SDEdit / InstructPix2Pix, SDEdit with a non-default strength; every yield kept."""
    x, y = axis("seed", "0, 1, 2"), axis("method", ",".join(CHEAP))
    params = {"sdedit": {"strength": 0.7}}
    out = tmp_path_factory.mktemp("sweep")
    return list(sw.iter_sweep(backbone, "text", inputs, x, y, (), 0, params, out_dir=out)), params


def test_every_cell_equals_the_method_run_alone(backbone, inputs, seed_by_method) -> None:
    sweeps, params = seed_by_method
    last = sweeps[-1]
    assert last.row_labels == ["SDEdit", "InstructPix2Pix"]
    assert last.column_labels == ["seed 0", "seed 1", "seed 2"]
    for row, method in enumerate(CHEAP):
        for column, seed in enumerate((0, 1, 2)):
            cell = last.cells[row][column]
            assert cell is not None and cell.kind == "result", cell
            assert_same_image(cell.image, alone(backbone, inputs, method, seed, params.get(method)), atol=0)
    assert not np.array_equal(np.asarray(last.cells[0][0].image), np.asarray(last.cells[0][1].image))


def test_steps_and_parameter_cells_equal_the_method_run_alone(backbone, inputs, tmp_path) -> None:
    (sweep,) = list(sw.iter_sweep(backbone, "text", inputs, axis("steps", "3"), None, ["sdedit"], 5, out_dir=tmp_path))
    assert sweep.records[0]["steps"] == 3
    assert_same_image(sweep.cells[0][0].image, alone(backbone, dataclasses.replace(inputs, steps=3), "sdedit", 5))

    x, y = axis("sdedit.strength", "0.5, 0.9"), axis("method", ",".join(CHEAP))
    *_, sweep = sw.iter_sweep(backbone, "text", inputs, x, y, (), 2, out_dir=tmp_path / "p")
    assert_same_image(sweep.cells[0][1].image, alone(backbone, inputs, "sdedit", 2, {"strength": 0.9}))
    assert_same_image(sweep.cells[1][1].image, sweep.cells[1][0].image)  # reused, not rerun
    records = {(r["row"], r["column"]): r for r in sweep.records}
    assert records[(1, 1)]["same_as"] == [1, 0] and "same_as" not in records[(1, 0)]
    assert [records[(0, c)]["params"]["strength"] for c in (0, 1)] == [0.5, 0.9]


def test_streaming_fills_cells_in_order(seed_by_method) -> None:
    sweeps, _ = seed_by_method
    assert len(sweeps) == 6  # one per distinct run
    assert [s.done for s in sweeps] == [False] * 5 + [True]
    for count, sweep in enumerate(sweeps, start=1):
        filled = [cell is not None for row in sweep.cells for cell in row]
        assert filled == [True] * count + [False] * (6 - count)
        assert [(r["row"], r["column"]) for r in sweep.records] == [divmod(i, 3) for i in range(count)]
        assert len(sweep.gallery) == count
    assert sweeps[-1].gallery[4][1] == "InstructPix2Pix · seed 1"


def test_files_hold_the_grid_and_every_cell(seed_by_method) -> None:
    last = seed_by_method[0][-1]
    grid_path, json_path = last.files
    assert (grid_path.name, json_path.name) == ("grid.png", "sweep.json")
    assert Image.open(grid_path).size == last.grid.size
    data = json.loads(json_path.read_text())
    assert data["condition"] == "text" and data["seed"] == 0
    assert data["x"] == {"key": "seed", "values": [0, 1, 2]}
    assert data["y"] == {"key": "method", "values": list(CHEAP)}
    assert data["inputs"]["steps"] == 2
    cells = [(r["row"], r["column"], r["method"], r["seed"], r["status"]) for r in data["records"]]
    assert cells == [(r, c, m, c, "ok") for r, m in enumerate(CHEAP) for c in range(3)]


def test_stop_after_the_first_cell_keeps_it(backbone, inputs, tmp_path) -> None:
    stop = threading.Event()
    sweeps = []
    for sweep in sw.iter_sweep(
        backbone, "text", inputs, axis("seed", "0, 1, 2"), axis("steps", "2, 3"), ["sdedit"], 0, stop=stop,
        out_dir=tmp_path,
    ):  # fmt: skip
        sweeps.append(sweep)
        stop.set()
    assert [s.done for s in sweeps] == [False, True]
    last = sweeps[-1]
    assert last.cells[0][0] is not None and last.cells[0][0].kind == "result"
    assert sum(cell is not None for row in last.cells for cell in row) == 1
    assert len(json.loads(last.files[1].read_text())["records"]) == 1


def test_a_stop_before_the_sweep_runs_nothing(backbone, inputs, tmp_path) -> None:
    stop = threading.Event()
    stop.set()
    sweeps = list(sw.iter_sweep(backbone, "text", inputs, axis("seed", "0, 1"), None, ["sdedit"], 0, stop=stop))
    assert len(sweeps) == 1 and sweeps[0].done and sweeps[0].records == []
    assert all(cell is None for row in sweeps[0].cells for cell in row)


def test_a_stop_inside_a_cell_stops_that_run_at_its_next_step(backbone, inputs, tmp_path) -> None:
    stop = threading.Event()

    def progress(fraction: float, text: str) -> None:
        if "step 1/" in text:
            stop.set()  # the visitor presses Stop while the first run is at its first step

    longer = dataclasses.replace(inputs, steps=4)  # SDEdit at strength 0.6 denoises 2 of them
    *_, sweep = sw.iter_sweep(
        backbone, "text", longer, axis("seed", "0, 1"), None, ["sdedit"], 0, progress=progress, stop=stop,
        out_dir=tmp_path,
    )  # fmt: skip
    assert sweep.done and sweep.cells[0][0] is not None and sweep.cells[0][1] is None
    assert sweep.cells[0][0].kind == "error"
    assert [(r["status"], r["message"]) for r in sweep.records] == [("stopped", "Stopped by the visitor at step 2/2.")]


# -- the grid and the table ------------------------------------------------------------------------------------


def test_grid_places_each_cell_and_greys_pending_ones() -> None:
    red, blue = Image.new("RGB", (64, 48), (200, 10, 10)), Image.new("RGB", (64, 64), (10, 10, 200))
    grid = sw.compose_sweep_grid(["", ""], ["a", "b"], [[red, None], [None, blue]])
    header = 22  # one line of column labels, no title, no row labels
    assert grid.size == (2 * 64, header + 2 * 64)
    assert_same_image(grid.crop((0, header + 8, 64, header + 56)), red)  # 64×48 centred in its 64 px cell
    assert_same_image(grid.crop((64, header + 64, 128, header + 128)), blue)
    assert grid.getpixel((96, header + 32)) == (228, 228, 228)
    big = sw.compose_sweep_grid(["r"], ["c"], [[Image.new("RGB", (1024, 512))]], "title", "footer")
    assert big.width < 256 + 200  # cells are at most 256 px


class _Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.th: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.classes: list[str] = []
        self._scope: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table":
            self.classes.append(values.get("class") or "")
        elif tag == "th":
            self._scope = values.get("scope")
            self.th.append((self._scope or "", ""))
        elif tag == "img":
            assert (values.get("src") or "").startswith("data:image/jpeg;base64,")
            self.images.append(values.get("title") or "")

    def handle_data(self, data: str) -> None:
        if self._scope is not None:
            self.th[-1] = (self.th[-1][0], self.th[-1][1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._scope = None


def test_sweep_html_has_every_label_and_one_image_per_finished_cell(seed_by_method) -> None:
    sweeps, _ = seed_by_method
    for sweep in (sweeps[1], sweeps[-1]):
        text = sweep_html(sweep)
        table = _Table()
        table.feed(text)
        assert table.classes == ["hub-sweep"]
        assert [label for scope, label in table.th if scope == "col"] == ["seed 0", "seed 1", "seed 2"]
        assert [label for scope, label in table.th if scope == "row"] == ["SDEdit", "InstructPix2Pix"]
        assert table.images == [caption for _, caption in sweep.gallery]
        assert text.count("…") == 6 - len(sweep.gallery)
    assert table.images[0] == "SDEdit · seed 0"


def test_a_checked_method_of_another_tab_is_refused_before_any_work(backbone, inputs, tmp_path) -> None:
    with pytest.raises(InputError, match="belongs to the Mask tab"):
        next(sw.iter_sweep(backbone, "text", inputs, axis("seed", "0"), None, ["sd_inpaint"], 0, out_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_sweep_controls() -> None:
    import gradio as gr

    from demos.sweep import sweep_controls

    with gr.Blocks():
        controls = sweep_controls("text")
    assert set(controls) == {"x", "x_values", "y", "y_values", "run", "html", "files"}
    assert (controls["x"].elem_id, controls["x"].value) == ("text-sweep-x", "method")
    assert (controls["y"].value, controls["y_values"].value) == ("seed", "0, 1")
    assert controls["y"].choices[0] == ("(none)", sw.AXIS_NONE)
    assert controls["x"].choices == sw.axis_choices("text")
    ids = {name: c.elem_id for name, c in controls.items()}
    assert (
        ids["x_values"] == "text-sweep-x-values" and ids["run"] == "text-sweep-run" and ids["html"] == "text-sweep-grid"
    )
    assert controls["files"].file_count == "multiple"
