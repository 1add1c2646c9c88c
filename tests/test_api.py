"""The app launched on the tiny backbone answers all ten endpoints through gradio_client, and turns bad
input into a readable error (never a stack trace)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from demos.api_examples import HOUSE, REQUESTS
from methods.core.registry import get_method, list_methods
from methods.core.slots import MASK
from methods.core.spec import Condition
from tests.conftest import tiny_settings
from tests.helpers import served


@pytest.fixture(scope="module")
def server(backbone) -> Iterator[str]:
    with served(backbone, tiny_settings()) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Client:
    return Client(server, verbose=False)


def test_requests_cover_every_condition() -> None:
    assert set(REQUESTS) == {c.value for c in Condition}


@pytest.mark.parametrize("condition", list(REQUESTS))
def test_endpoint_returns_condition_and_method_cells(client: Client, condition: str) -> None:
    methods = [m.name for m in list_methods(condition)]  # the slow ones too (unticked by default on a CPU)
    gallery, records, files, seed, _ = client.predict(
        **REQUESTS[condition], seed=5, steps=2, methods=methods, api_name=f"/{condition}"
    )
    assert seed == 5
    assert len(gallery) >= 1 + len(methods)
    statuses = {row[0]: row[1] for row in records["data"]}
    assert set(statuses) == set(methods)
    assert all(status == "ok" for status in statuses.values()), records["data"]
    for cell in gallery[: 1 + len(methods)]:
        image = Image.open(cell["image"])
        assert image.size[0] >= 64
    assert any(str(f).endswith("grid.png") for f in files)
    record_file = next(f for f in files if str(f).endswith("records.json"))
    saved = json.loads(Path(record_file).read_text())
    assert saved["condition"] == condition and saved["records"][0]["seed"] == 5


def _error_of(client: Client, **kwargs) -> str:
    with pytest.raises(Exception) as error:  # noqa: B017 - gradio_client raises AppError
        client.predict(**kwargs)
    message = str(error.value)
    assert "Traceback" not in message
    return message


def test_missing_image_says_what_to_do(client: Client) -> None:
    message = _error_of(client, image=None, prompt="snow", api_name="/text")
    assert "upload" in message.lower()


def test_empty_prompt_says_what_to_do(client: Client) -> None:
    message = _error_of(client, image=HOUSE, prompt="  ", api_name="/text")
    assert "prompt" in message.lower()


def test_missing_mask_skips_the_masked_methods_and_outpaints(client: Client) -> None:
    _, records, _, _, _ = client.predict(
        image=HOUSE, mask_drawing=None, mask_image=None, prompt="a door", steps=2, api_name="/mask"
    )
    for name, status, message in ((row[0], row[1], row[7]) for row in records["data"]):
        needs_mask = MASK in get_method(name).requires
        assert status == ("skipped" if needs_mask else "ok"), (name, status, message)
        assert not needs_mask or "needs a mask" in message


def test_no_method_selected(client: Client) -> None:
    message = _error_of(client, image=HOUSE, prompt="snow", methods=[], api_name="/text")
    assert "at least one method" in message.lower()


def test_bad_json_boxes(client: Client) -> None:
    message = _error_of(client, image=None, boxes="[{oops", prompt="", api_name="/layout")
    assert "json" in message.lower()


def test_not_an_image_file(client: Client, tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image")
    message = _error_of(client, image=handle_file(str(fake)), prompt="snow", api_name="/text")
    assert "could not be read as an image" in message


def test_not_an_audio_file(client: Client, tmp_path: Path) -> None:
    fake = tmp_path / "clip.wav"
    fake.write_text("not audio at all")
    message = _error_of(client, image=HOUSE, audio=handle_file(str(fake)), prompt="", api_name="/audio")
    assert "audio" in message.lower()


@pytest.mark.parametrize("kind", ["huge", "rgba", "gray", "gray16"])
def test_unusual_photos_are_normalised(client: Client, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.png"
    if kind == "huge":
        Image.new("RGB", (6000, 4000), (90, 140, 200)).save(path)
    elif kind == "rgba":
        Image.new("RGBA", (300, 200), (200, 30, 30, 128)).save(path)
    elif kind == "gray":
        Image.new("L", (300, 200), 128).save(path)
    else:
        ramp = (np.linspace(0, 65535, 300 * 200).reshape(200, 300)).astype(np.uint16)
        Image.fromarray(ramp).save(path)
    gallery, records, _, _, _ = client.predict(image=handle_file(str(path)), prompt="snow", steps=2, api_name="/text")
    assert records["data"][0][1] == "ok"
    out = Image.open(gallery[1]["image"])
    assert max(out.size) == 128 and out.mode == "RGB"


def test_metrics_toggle_adds_a_row_per_method(client: Client) -> None:
    _, records, _, _, metrics = client.predict(
        **REQUESTS["text"], seed=1, steps=2, show_metrics=True, methods=["sdedit"], api_name="/text"
    )
    assert records["data"][0][1] == "ok"
    headers = metrics["headers"]
    assert "method" in headers and any("SSIM" in h or "ssim" in h for h in headers)
    assert len(metrics["data"]) == 1


def _pixels(cell: dict) -> np.ndarray:
    return np.asarray(Image.open(cell["image"]).convert("RGB"))


def test_endpoint_streams_partial_grids_and_ends_with_the_whole(client: Client) -> None:
    methods = ["sdedit", "ledits_pp", "instruct_pix2pix"]
    job = client.submit(**REQUESTS["text"], seed=2, steps=2, methods=methods, api_name="/text")
    final = job.result(timeout=300)
    partials = job.outputs()
    assert len(partials) >= 2, "the endpoint did not stream"
    assert [len(p[1]["data"] or []) for p in partials][:3] == [0, 1, 2]  # the source at once, then one per method
    assert len(partials[0][0]) == 1  # the condition cell
    gallery, records, _, seed, _ = final
    assert seed == 2 and [row[0] for row in records["data"]] == methods
    whole = client.predict(**REQUESTS["text"], seed=2, steps=2, methods=methods, api_name="/text")
    assert len(whole[0]) == len(gallery)
    for streamed, direct in zip(gallery, whole[0], strict=True):  # the same cells, bit for bit
        assert np.array_equal(_pixels(streamed), _pixels(direct))
        assert streamed["caption"].split(" · ")[0] == direct["caption"].split(" · ")[0]


def test_sweep_endpoint_cells_equal_single_runs(client: Client) -> None:
    html, files, cells = client.predict(
        **REQUESTS["text"],
        steps=2,
        methods=["sdedit", "ledits_pp"],
        x_axis="seed",
        x_values="0, 1, 2",
        y_axis="method",
        y_values="sdedit, ledits_pp",
        api_name="/text_sweep",
    )
    assert len(cells) == 6 and html.count("<img") == 6
    saved = json.loads(Path(next(f for f in files if str(f).endswith(".json"))).read_text())
    assert len(saved["records"]) == 6
    for index, cell in enumerate(cells):  # row-major: rows are methods, columns seeds
        method, seed = ["sdedit", "ledits_pp"][index // 3], index % 3
        single = client.predict(**REQUESTS["text"], seed=seed, steps=2, methods=[method], api_name="/text")
        assert np.array_equal(_pixels(cell), _pixels(single[0][1])), (method, seed)


@pytest.mark.parametrize(
    ("axes", "words"),
    [
        ({"x_axis": "seed", "x_values": "0-100000"}, "at most"),
        ({"x_axis": "no_such_axis", "x_values": "1"}, "axis"),
        ({"x_axis": "seed", "x_values": "0, 1", "y_axis": "seed", "y_values": "2"}, "the same"),
        ({"x_axis": "sdedit.strength", "x_values": "0.5, 7"}, "strength"),
    ],
)
def test_sweep_refuses_bad_axes_with_a_sentence(client: Client, axes: dict, words: str) -> None:
    request = {"y_axis": "", "y_values": "", **axes}
    message = _error_of(client, **REQUESTS["text"], methods=["sdedit"], steps=2, api_name="/text_sweep", **request)
    assert words in message.lower(), message
