"""A public Space gets hostile input. Every bad value below is sent to the running app the way a raw HTTP client
sends it (JSON with NaN and Infinity, strings for numbers, ``null`` lists, files that are not what they claim),
and every answer must be a sentence — non-empty, naming the field, without a server path or a Python repr — or
a valid result. Afterwards the app still answers a good request. The upload limit, the work bounds and the
leaderboard's folder root are checked the same way."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from gradio_client import Client
from PIL import Image

from demos.api_examples import REQUESTS
from methods.core.limits import MAX_BOXES, MAX_CLICKS, MAX_DRAG_PAIRS, MAX_LABELS
from methods.core.spec import Condition
from tests.conftest import tiny_settings
from tests.helpers import served

NAN, INF = math.nan, math.inf
MAX_FILE_MB = 1.0
OK = "a valid result"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad files: decompression bombs (tiny PNGs that claim huge sizes), a text file named .png, too big, silence."""
    folder = tmp_path_factory.mktemp("hostile")
    made = {
        "bomb": folder / "bomb.png",  # 20000 x 20000: PIL refuses it before decoding
        "over_limit": folder / "big.png",  # 9000 x 8000 = 72 megapixels: over the hub's 64
        "not_image": folder / "notes.png",
        "too_big": folder / "photo.png",  # 2 MB over a 1 MB upload limit
        "silence": folder / "silence.wav",
        "blank": folder / "blank.png",
    }
    Image.new("1", (20000, 20000)).save(made["bomb"])
    Image.new("1", (9000, 8000)).save(made["over_limit"])
    made["not_image"].write_text("this is not an image")
    made["too_big"].write_bytes(np.random.default_rng(0).integers(0, 256, 2 * 2**20, dtype=np.uint8).tobytes())
    soundfile.write(made["silence"], np.zeros(16000, dtype=np.float32), 16000)
    Image.new("RGB", (128, 128), "white").save(made["blank"])
    return made


@pytest.fixture(scope="module")
def app_url(backbone, tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("hostile-app")
    settings = dataclasses.replace(
        tiny_settings(), max_file_mb=MAX_FILE_MB, output_dir=root / "runs", keep_runs=3, results_root=root / "results"
    )
    with served(backbone, settings) as (url, _):
        yield url


class RawClient:
    """What a hostile client sends: the /call REST API with a JSON body written by hand (NaN allowed)."""

    def __init__(self, url: str) -> None:
        self.url = url
        info = Client(url, verbose=False).view_api(return_format="dict", print_info=False)
        self.parameters = {  # endpoint -> [(parameter name, its default: the widget's initial value)]
            name.strip("/"): [(p["parameter_name"], p.get("parameter_default")) for p in endpoint["parameters"]]
            for name, endpoint in info["named_endpoints"].items()
        }
        self._uploaded: dict[str, str] = {}

    def upload(self, path: str | Path) -> httpx.Response:
        with open(path, "rb") as handle:
            return httpx.post(f"{self.url}gradio_api/upload", files={"files": handle}, timeout=60)

    def file(self, path: str) -> dict[str, Any]:
        if path not in self._uploaded:
            response = self.upload(path)
            response.raise_for_status()
            self._uploaded[path] = response.json()[0]
        return {"path": self._uploaded[path], "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}

    def _files(self, value: Any) -> Any:
        """Local files (gradio_client's handle_file dicts) uploaded and replaced by the server's FileData."""
        if isinstance(value, dict) and value.get("meta", {}).get("_type") == "gradio.FileData":
            return self.file(value["path"]) if Path(value["path"]).is_file() else value
        if isinstance(value, dict):
            return {k: self._files(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._files(v) for v in value]
        return value

    def call(self, api: str, values: dict[str, Any] | None = None, data: list[Any] | None = None) -> tuple[str, Any]:
        """("complete", outputs) or ("error", message)."""
        if data is None:
            values = self._files(values or {})
            data = [values.get(name, default) for name, default in self.parameters[api]]
        body = json.dumps({"data": data})  # allow_nan: NaN and Infinity go out as JSON's non-standard literals
        headers = {"content-type": "application/json"}
        answer = httpx.post(f"{self.url}gradio_api/call/{api}", content=body, headers=headers, timeout=60)
        answer.raise_for_status()
        event_id = answer.json()["event_id"]
        event = None
        with httpx.stream("GET", f"{self.url}gradio_api/call/{api}/{event_id}", timeout=300) as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in {"complete", "error"}:
                    payload = json.loads(line.split(":", 1)[1])
                    if event == "error":
                        return "error", (payload or {}).get("error") if isinstance(payload, dict) else payload
                    return "complete", payload
        raise AssertionError(f"no answer from /{api}")


@pytest.fixture(scope="module")
def raw(app_url: str) -> RawClient:
    return RawClient(app_url)


PATH_LIKE = re.compile(r"(/tmp/|/root/|/work/|/home/|/usr/|site-packages|\\\\)")
REPR_LIKE = re.compile(r"(<class |object at 0x|Traceback|\w+Error\(|\{'|\[\s*'|NoneType|upstream Gradio app)")


def assert_sentence(message: Any) -> str:
    assert isinstance(message, str) and message.strip(), f"empty error: {message!r}"
    assert not PATH_LIKE.search(message), f"server path in: {message}"
    assert not REPR_LIKE.search(message), f"Python repr in: {message}"
    assert len(message) < 600, f"message of {len(message)} characters: {message[:200]}…"
    return message


def _bad(tab: str, case: str, change: dict[str, Any], expect: str) -> Any:
    return pytest.param(tab, change, expect, id=f"{tab}-{case}")


# The same five mistakes on every tab: a string seed, NaN steps, a null or unknown method list, infinite guidance.
GENERIC = [
    case
    for condition in Condition
    for case in (
        _bad(condition.value, "seed-text", {"seed": "abc"}, "seed"),
        _bad(condition.value, "steps-nan", {"steps": NAN}, "steps"),
        _bad(condition.value, "methods-null", {"methods": None}, "methods to compare"),
        _bad(condition.value, "methods-unknown", {"methods": ["no_such_method"]}, "no choice"),
        _bad(condition.value, "guidance-infinite", {"guidance_scale": INF}, "guidance"),
    )
]
ONE = {"steps": 1}
SPECIFIC = [
    _bad("text", "bomb", {"image": "bomb"}, "too large"),
    _bad("text", "over-64-megapixels", {"image": "over_limit"}, "too large"),
    _bad("text", "not-an-image", {"image": "not_image"}, "could not be read as an image"),
    _bad("text", "image-is-a-string", {"image": "hello"}, "could not be read as an image"),
    _bad("text", "prompt-too-long", {"prompt": "snow " * 3000}, "characters long"),
    _bad("text", "param-nan", {"methods": ["sdedit"], "sdedit__strength": NAN}, "strength"),
    _bad("text", "param-string", {"methods": ["sdedit"], "sdedit__strength": "lots"}, "strength"),
    _bad("text", "param-out-of-range", {"methods": ["sdedit"], "sdedit__strength": 5}, "strength"),
    _bad("text", "flag-not-boolean", {"randomize_seed": "maybe"}, "randomize seed"),
    _bad("text", "guidance-below-range", {"guidance_scale": 0}, "guidance"),
    _bad("text", "seed-negative", {"seed": -5}, "seed"),
    _bad("text", "no-prompt", {"prompt": "", "instruction": ""}, "prompt"),
    _bad("mask", "editor-garbage", {"mask_drawing": {"background": "nonsense", "layers": []}}, "could not be read"),
    _bad("mask", "mask-bomb", {"mask_image": "bomb"}, "too large"),
    _bad("mask", "mask-not-image", {"mask_image": "not_image"}, "could not be read as an image"),
    _bad("mask", "no-prompt", {"prompt": " "}, "prompt"),
    _bad("reference", "no-reference", {"reference": None}, "reference image"),
    _bad("reference", "reference-bomb", {"reference": "bomb"}, "too large"),
    _bad("pose", "keypoints-nan", {"keypoints": "[[NaN, 0.5]]"}, "finite"),
    _bad("pose", "keypoints-count", {"keypoints": "[[0.5, 0.5]]"}, "18 entries"),
    _bad("pose", "keypoints-not-json", {"keypoints": "[[0.5, 0.5"}, "not valid json"),
    _bad("pose", "keypoints-boolean", {"keypoints": json.dumps([[True, 0.5]] * 18)}, "keypoint"),
    _bad("pose", "mode-unknown", {"pose_mode": "dance"}, "no choice"),
    _bad("pose", "map-missing", {"pose_mode": "upload pose map", "pose_map": None}, "pose map"),
    _bad("sketch", "editor-garbage", {"sketch": {"background": "nonsense", "layers": []}}, "could not be read"),
    _bad("sketch", "empty-sketch", {"sketch_upload": "blank"}, "empty"),
    _bad("sketch", "source-unknown", {"sketch_from": "telepathy"}, "no choice"),
    _bad("segmentation", "clicks-nan", {"region_mode": "clicks on the map", "region_clicks": "[[NaN, 1]]"}, "finite"),
    _bad(
        "segmentation",
        "too-many-clicks",
        {"region_mode": "clicks on the map", "region_clicks": json.dumps([[0.5, 0.5]] * (MAX_CLICKS + 1))},
        f"at most {MAX_CLICKS}",
    ),
    _bad("segmentation", "class-unknown", {"region_class": "watr"}, "close choices: water"),
    _bad("segmentation", "no-map", {"segmap": None}, "segmentation map"),
    _bad("layout", "box-nan", {"boxes": '[{"phrase": "a car", "box": [NaN, 0, 1, 1]}]'}, "finite"),
    _bad(
        "layout",
        "too-many-boxes",
        {"boxes": json.dumps([{"phrase": "a car", "box": [0, 0, 0.5, 0.5]}] * (MAX_BOXES + 1))},
        f"at most {MAX_BOXES}",
    ),
    _bad("layout", "box-strings", {"boxes": '[{"phrase": "a car", "box": ["a", "b", "c", "d"]}]'}, "four numbers"),
    _bad("layout", "not-a-list", {"boxes": '{"phrase": "a car"}'}, "json list"),
    _bad("layout", "no-boxes", {"boxes": "[]"}, "at least one box"),
    _bad(
        "drag",
        "too-many-pairs",
        {"drag_points": json.dumps([[0.1, 0.1, 0.2, 0.2]] * (MAX_DRAG_PAIRS + 1))},
        f"at most {MAX_DRAG_PAIRS}",
    ),
    _bad("drag", "point-nan", {"drag_points": "[[NaN, 0.1, 0.2, 0.2]]"}, "finite"),
    _bad("drag", "point-infinite", {"drag_points": "[[Infinity, 0.1, 0.2, 0.2]]"}, "finite"),
    _bad("drag", "point-outside", {"drag_points": "[[1.5, 0.1, 0.2, 0.2]]"}, "0..1"),
    _bad("drag", "iterations-nan", {"drag_diffusion__iterations": NAN}, "iterations"),
    _bad(
        "drag",
        "work-over-the-cap",
        {
            "drag_points": json.dumps([[0.1, 0.1, 0.3, 0.3]] * MAX_DRAG_PAIRS),
            "drag_diffusion__iterations": 200,
            "methods": ["drag_diffusion"],
        },
        "pair-iterations",
    ),
    _bad("drag", "regions-nan", {"region_pairs": "[[NaN, 0.1, 0.3, 0.3, 0.5, 0.5, 0.7, 0.7]]"}, "finite"),
    _bad("drag", "regions-short", {"region_pairs": "[[0.1, 0.1, 0.3, 0.3]]"}, "eight numbers"),
    _bad("drag", "regions-thin", {"region_pairs": "[[0.1, 0.1, 0.1, 0.3, 0.5, 0.5, 0.7, 0.7]]"}, "too thin"),
    _bad("drag", "regions-outside", {"region_pairs": "[[0.1, 0.1, 0.3, 0.3, 0.5, 0.5, 1.7, 0.7]]"}, "0..1"),
    _bad(
        "drag",
        "too-many-regions",
        {"region_pairs": json.dumps([[0.1, 0.1, 0.3, 0.3, 0.5, 0.5, 0.7, 0.7]] * (MAX_DRAG_PAIRS + 1))},
        f"at most {MAX_DRAG_PAIRS}",
    ),
    _bad("layout", "box-outside", {"boxes": '[{"phrase": "a car", "box": [0.1, 0.1, 0.1, 0.12]}]'}, "too small"),
    _bad("audio", "not-audio", {"audio": "not_image"}, "could not be read as audio"),
    _bad("audio", "silent", {"audio": "silence"}, "silent"),
    _bad("audio", "no-audio", {"audio": None}, "audio clip"),
    _bad("audio", "too-many-labels", {"labels": ",".join(f"sound {i}" for i in range(MAX_LABELS + 1))}, "at most"),
    _bad("audio", "one-label", {"labels": "rain"}, "at least two"),
    _bad("class", "id-as-text", {"source_class": "281"}, OK),
    _bad("class", "misspelt", {"source_class": "tabyy"}, "close names: tabby"),
    _bad("class", "id-out-of-range", {"target_class": 5000}, "0 to 999"),
    _bad("class", "empty", {"target_class": ""}, "pick both"),
    _bad(
        "audio", "label-with-semicolon", {"methods": ["clap_ledits"], "clap_ledits__labels": "rain; wind, birds"}, ";"
    ),
    _bad("audio", "scale-nan", {"methods": ["sound_guidance"], "sound_guidance__scale": NAN}, "scale"),
    _bad(
        "class", "template-no-name", {"methods": ["p2p_class_names"], "p2p_class_names__template": "a photo"}, "{name}"
    ),
    _bad("class", "skip-out-of-range", {"methods": ["ddpm_inversion_dit"], "ddpm_inversion_dit__skip": 5}, "skip"),
    _bad(
        "class",
        "scale-string",
        {"methods": ["classifier_guidance_dit"], "classifier_guidance_dit__scale": "x"},
        "scale",
    ),
]


@pytest.mark.parametrize(("tab", "change", "expect"), GENERIC + SPECIFIC)
def test_bad_input_gets_a_sentence(raw: RawClient, files: dict[str, Path], tab: str, change: dict, expect: str):
    values = {**REQUESTS[tab], **ONE}
    for key, value in change.items():
        if isinstance(value, str) and value in files:  # a named bad file
            value = {"path": str(files[value]), "meta": {"_type": "gradio.FileData"}}
        values[key] = value
    if tab == "drag" and "drag_diffusion__iterations" not in change:
        values["drag_diffusion__iterations"] = 2
    for key in change:  # a method's parameter is read only when the method is chosen (the slow ones start unticked)
        method = key.split("__")[0] if "__" in key else None
        if method and "methods" not in change:
            values["methods"] = [method]
    event, answer = raw.call(tab, values)
    if expect == OK:
        assert event == "complete", answer
        statuses = [row[1] for row in answer[1]["data"]]
        assert statuses and all(s == "ok" for s in statuses), answer[1]["data"]
        return
    if event == "complete":  # the whole request ran: the sentence is the method's skipped cell
        messages = [row[7] for row in answer[1]["data"] if row[1] != "ok"]
        assert messages, f"/{tab} accepted {change}"
        message = messages[0]
    else:
        message = answer
    assert expect.lower() in assert_sentence(message).lower(), message


def test_too_few_values(raw: RawClient) -> None:
    event, message = raw.call("text", data=[None, "snow"])
    assert event == "error" and "takes" in assert_sentence(message)


def test_leaderboard_reads_only_under_its_root(raw: RawClient) -> None:
    for folder in ("/etc", "../../..", "/root/.cache"):
        event, message = raw.call("leaderboard", {"folder_value": folder})
        assert event == "error" and "results root" in assert_sentence(message)


def test_uploads_over_the_size_limit_are_refused(raw: RawClient, files: dict[str, Path]) -> None:
    response = raw.upload(files["too_big"])
    assert response.status_code == 413
    assert "maximum allowed size" in response.text and str(int(MAX_FILE_MB * 2**20)) in response.text


def test_the_app_still_answers_a_good_request(raw: RawClient) -> None:
    event, answer = raw.call("text", {**REQUESTS["text"], "steps": 2, "methods": ["sdedit"], "seed": 3})
    assert event == "complete"
    assert [row[1] for row in answer[1]["data"]] == ["ok"] and answer[3] == 3
