"""LMM Score judge: the OpenAI-compatible protocol against a scripted judge server on 127.0.0.1.

The server runs in a thread, answers at most ``MAX_REQUESTS`` requests within ``DEADLINE`` seconds and
then stops by itself; it records every request and replies with the scripted answers in order.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from PIL import Image

from evaluation import judge as J
from tests.conftest import make_photo

MAX_REQUESTS = 40
DEADLINE = 120.0

GOOD = {"content": 'Here you go: {"accuracy": 8, "preservation": 6, "quality": 7, "realism": 9}'}
MALFORMED = {"content": "accuracy eight, preservation six"}
OUT_OF_RANGE = {"content": '{"accuracy": 11, "preservation": 6, "quality": 7, "realism": 9}'}
REFUSED = {"refusal": "I can't help with that."}
FILTERED = {"content": None, "finish_reason": "content_filter"}
SERVER_ERROR = {"status": 500}
UNAUTHORIZED = {"status": 401}


class ScriptedJudgeServer:
    def __init__(self) -> None:
        self.script: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                reply = server.script.pop(0) if server.script else MALFORMED
                status = reply.get("status", 200)
                message = {"role": "assistant", "content": reply.get("content"), "refusal": reply.get("refusal")}
                choice = {"index": 0, "message": message, "finish_reason": reply.get("finish_reason", "stop")}
                data = json.dumps({"choices": [choice]} if status == 200 else {"error": "scripted"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.2
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while not self.stop.is_set() and len(self.requests) < MAX_REQUESTS and time.monotonic() < deadline:
            self.httpd.handle_request()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, *replies: dict[str, Any]) -> None:
        self.script[:] = list(replies)
        self.requests.clear()


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedJudgeServer]:
    scripted = ScriptedJudgeServer()
    yield scripted
    scripted.stop.set()
    scripted.thread.join(timeout=5)


@pytest.fixture()
def judge(server: ScriptedJudgeServer) -> Iterator[J.OpenAIJudge]:
    client = J.OpenAIJudge(server.url, "scripted-vlm", api_key="test-key", timeout=10, retry_delay=0)
    yield client
    client.close()


SOURCE, EDITED = make_photo(seed=0), make_photo(seed=4)


def _decode(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_good_answer_and_the_request_carries_images_and_instruction(server, judge):
    server.answer(GOOD)
    verdict = judge.judge(SOURCE, EDITED, "object_addition", "Add a red car on the road")
    assert verdict.scores == {"accuracy": 8, "preservation": 6, "quality": 7, "realism": 9}
    assert verdict.score == pytest.approx(0.4 * 8 + 0.3 * 6 + 0.2 * 7 + 0.1 * 9)
    assert verdict.attempts == 1
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer test-key"
    body = request["body"]
    assert body["model"] == "scripted-vlm" and body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and "accuracy" in system["content"] and "realism" in system["content"]
    texts = [part["text"] for part in user["content"] if part["type"] == "text"]
    images = [part["image_url"]["url"] for part in user["content"] if part["type"] == "image_url"]
    assert any("Add a red car on the road" in t and "object addition" in t for t in texts)
    assert len(images) == 2  # source first, then the edit, both inline
    for url, original in zip(images, (SOURCE, EDITED), strict=True):
        decoded = _decode(url)
        assert decoded.size == original.size
        assert list(decoded.convert("RGB").getdata()) == list(original.getdata())


def test_malformed_then_good_is_retried(server, judge):
    server.answer(MALFORMED, GOOD)
    verdict = judge.judge(SOURCE, EDITED, "style_change", "Make it a watercolour")
    assert verdict.attempts == 2 and verdict.score is not None
    assert len(server.requests) == 2


def test_out_of_range_answers_end_as_missing_after_bounded_retries(server, judge):
    server.answer(OUT_OF_RANGE, OUT_OF_RANGE, OUT_OF_RANGE, GOOD)
    verdict = judge.judge(SOURCE, EDITED, "style_change", "Make it a watercolour")
    assert len(server.requests) == 3  # max_attempts, not one more
    assert verdict.scores is None and verdict.score is None
    assert "outside 1..10" in verdict.error
    row = verdict.as_row()
    assert row["lmm_score"] is None and row["lmm_accuracy"] is None and row["lmm_attempts"] == 3


def test_refusals_and_server_errors_are_retried_then_missing(server, judge):
    server.answer(REFUSED, FILTERED, SERVER_ERROR, GOOD)
    verdict = judge.judge(SOURCE, EDITED, "object_removal", "Remove the man")
    assert len(server.requests) == 3
    assert verdict.scores is None and "HTTPStatusError" in verdict.error
    server.answer(SERVER_ERROR, GOOD)
    assert judge.judge(SOURCE, EDITED, "object_removal", "Remove the man").attempts == 2


def test_bad_credentials_stop_at_once(server, judge):
    server.answer(UNAUTHORIZED, GOOD)
    verdict = judge.judge(SOURCE, EDITED, "object_removal", "Remove the man")
    assert len(server.requests) == 1 and verdict.scores is None and "HTTP 401" in verdict.error


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('```json\n{"accuracy": 3, "preservation": 4, "quality": 5, "realism": 6}\n```', (3, 4, 5, 6)),
        ('{"Accuracy": "10", "preservation": 1.0, "quality": 5, "realism": 6}', (10, 1, 5, 6)),
        ('{"accuracy": 7.5, "preservation": 4, "quality": 5, "realism": 6}', None),
        ('{"accuracy": true, "preservation": 4, "quality": 5, "realism": 6}', None),
        ('{"accuracy": 0, "preservation": 4, "quality": 5, "realism": 6}', None),
        ('{"accuracy": 7, "preservation": 4, "quality": 5}', None),
        ("I'm sorry, but I can't rate this image.", None),
        ("", None),
    ],
)
def test_parse_answer(answer, expected):
    if expected is None:
        with pytest.raises(J.AnswerError):
            J.parse_answer(answer)
    else:
        assert tuple(J.parse_answer(answer).values()) == expected


def test_make_judge_reads_the_environment(monkeypatch):
    monkeypatch.setenv("HUB_JUDGE_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("HUB_JUDGE_MODEL", "some-vlm")
    monkeypatch.setenv("HUB_JUDGE_API_KEY", "secret")
    judge = J.make_judge("openai", max_attempts=2)
    assert isinstance(judge, J.OpenAIJudge)
    assert judge.description == {
        "kind": "openai",
        "max_attempts": 2,
        "base_url": "http://127.0.0.1:9/v1",
        "model": "some-vlm",
    }  # never the key
    assert J.make_judge("none") is None
    with pytest.raises(ValueError, match="choose one of"):
        J.make_judge("gpt")


def test_local_judge_without_weights_records_missing():
    """The local backend's load fails offline (no weights here): recorded as missing after one attempt."""
    judge = J.LocalJudge("no-such-org/no-such-vlm", device="cpu")
    verdict = judge.judge(SOURCE, EDITED, "style_change", "Make it a watercolour")
    assert verdict.scores is None and verdict.attempts == 1 and "could not load" in verdict.error


def test_runner_records_judge_scores_and_missing(server, backbone, tmp_path):
    """Through the EditEval runner: a good verdict becomes LMM columns; an unusable one stays blank."""
    from evaluation.editeval import evaluate
    from tests.test_editeval import write_dataset

    dataset = write_dataset(tmp_path / "data")
    judge = J.OpenAIJudge(server.url, "scripted-vlm", timeout=10, max_attempts=2, retry_delay=0)
    server.answer(GOOD, MALFORMED, MALFORMED)  # item 1: good; item 2: two malformed answers
    summary = evaluate(
        backbone, dataset, tmp_path / "out", ["sdedit"], steps=2, metrics=("ssim",), judge=judge, progress=False
    )
    judge.close()
    assert len(server.requests) == 3
    first, second = summary.rows
    assert first["lmm_score"] == pytest.approx(7.3) and first["lmm_attempts"] == 1
    assert second["lmm_score"] is None and second["lmm_attempts"] == 2 and "no JSON object" in second["lmm_error"]
    csv_text = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert "lmm_score" in csv_text[0] and ",7.3," in csv_text[1]
    table = (tmp_path / "out" / "table.csv").read_text()
    assert "lmm_score,sdedit,all,7.3,0.0,1" in table  # the missing one is not averaged in
