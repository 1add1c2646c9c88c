"""LMM Score: a multimodal judge rates each edit (the survey's EditEval protocol; our own prompt).

The judge sees the source image, the editing task and the instruction, then one edited image, and answers
four integer sub-scores from 1 to 10: editing accuracy, contextual preservation, visual quality and logical
realism. LMM Score = 0.4 accuracy + 0.3 preservation + 0.2 quality + 0.1 realism. An answer that is not
parseable, out of range or a refusal is asked again, at most ``max_attempts`` times; after that the edit's
score is recorded as missing (None), never as a number.

Backends:

- ``OpenAIJudge``: any OpenAI-compatible ``/chat/completions`` endpoint. ``HUB_JUDGE_BASE_URL`` (default
  ``OPENAI_BASE_URL`` or https://api.openai.com/v1), ``HUB_JUDGE_MODEL`` (default ``OPENAI_MODEL`` or
  gpt-4o), ``HUB_JUDGE_API_KEY`` (default ``OPENAI_API_KEY``). Images travel inline as PNG ``data:`` URLs.
- ``LocalJudge``: a transformers vision-language model by id (``HUB_JUDGE_MODEL``), run with
  ``AutoModelForImageTextToText`` and its processor's chat template. This code path needs that model's
  weights and is not exercised by the tests (no weights here).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

WEIGHTS = {"accuracy": 0.4, "preservation": 0.3, "quality": 0.2, "realism": 0.1}
SUBSCORES = tuple(WEIGHTS)
JUDGE_KINDS = ("none", "openai", "local")

SYSTEM_PROMPT = (
    "You grade the output of an image-editing system. You are shown an original photo and a version that "
    "the system edited to follow one instruction. Give four integer grades from 1 (very poor) to 10 "
    "(flawless):\n"
    "- accuracy: was the requested change carried out, completely and exactly as asked?\n"
    "- preservation: is everything the instruction did not ask to change (subject identity, layout, "
    "background, colours, other objects) still as in the original?\n"
    "- quality: is the edited picture technically clean, free of noise, blur, seams, smears and artifacts?\n"
    "- realism: is the result physically and semantically believable (lighting, shadows, perspective, "
    "scale, anatomy)?\n"
    "Grade only what is visible. An unchanged copy of the original has low accuracy. Answer with a single "
    'JSON object and nothing else, for example {"accuracy": 6, "preservation": 9, "quality": 7, "realism": 8}.'
)


class AnswerError(ValueError):
    """The judge's answer cannot be used (malformed, out of range, or a refusal)."""


class FatalJudgeError(RuntimeError):
    """A failure no retry can fix (bad credentials, unknown model): stop asking."""


@dataclass
class Verdict:
    """The judge's four sub-scores for one edit, or None with the reason after the last attempt."""

    scores: dict[str, int] | None
    attempts: int
    error: str = ""
    answers: list[str] = field(default_factory=list)  # raw answers, for the record

    @property
    def score(self) -> float | None:
        return None if self.scores is None else lmm_score(self.scores)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {f"lmm_{k}": (self.scores or {}).get(k) for k in SUBSCORES}
        row.update(lmm_score=self.score, lmm_attempts=self.attempts, lmm_error=self.error)
        return row


def lmm_score(scores: dict[str, int]) -> float:
    return round(sum(WEIGHTS[k] * scores[k] for k in SUBSCORES), 4)


def parse_answer(text: str | None) -> dict[str, int]:
    """The four integer sub-scores from an answer; AnswerError says why not."""
    if not text or not text.strip():
        raise AnswerError("empty answer")
    match = re.search(r"\{.*?\}", text, flags=re.DOTALL)
    if match is None:
        raise AnswerError(f"no JSON object in the answer: {text[:120]!r}")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as error:
        raise AnswerError(f"malformed JSON ({error.msg}): {match.group(0)[:120]!r}") from None
    if not isinstance(data, dict):
        raise AnswerError("the answer is not a JSON object")
    data = {str(k).strip().lower(): v for k, v in data.items()}
    scores = {}
    for key in SUBSCORES:
        value = data.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise AnswerError(f"{key} is missing or not an integer: {value!r}")
        if not 1 <= value <= 10:
            raise AnswerError(f"{key} = {value} is outside 1..10")
        scores[key] = value
    return scores


# Messages are a neutral list of parts, ("text", str) or ("image", PIL image); each backend renders them.
Part = tuple[str, Any]


def task_text(task: str) -> str:
    return task.replace("_", " ")


def build_parts(source: Image.Image, edited: Image.Image, task: str, instruction: str) -> list[Part]:
    return [
        ("text", f"Editing task: {task_text(task)}.\nInstruction: {instruction.strip()}\nImage 1, the original photo:"),
        ("image", source),
        ("text", "Image 2, the edited result to grade:"),
        ("image", edited),
        ("text", "Grade image 2 against the instruction and image 1. Reply with the JSON object only."),
    ]


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Judge(ABC):
    """Asks a model for the four sub-scores, retrying unusable answers a bounded number of times."""

    kind = "judge"

    def __init__(self, max_attempts: int = 3, retry_delay: float = 1.0) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay

    @property
    def description(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_attempts": self.max_attempts}

    @abstractmethod
    def ask(self, parts: list[Part]) -> str:
        """One request; returns the answer text or raises AnswerError / FatalJudgeError / another error."""

    def judge(self, source: Image.Image, edited: Image.Image, task: str, instruction: str) -> Verdict:
        parts = build_parts(source, edited, task, instruction)
        answers: list[str] = []
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                answer = self.ask(parts)
                answers.append(answer)
                return Verdict(parse_answer(answer), attempt, "", answers)
            except FatalJudgeError as fatal:
                return Verdict(None, attempt, f"judge failed: {fatal}", answers)
            except AnswerError as unusable:
                error = str(unusable)
            except Exception as failure:  # noqa: BLE001 - network / server errors: retry, then record
                error = f"{type(failure).__name__}: {failure}"
            logger.warning("judge attempt %d/%d unusable: %s", attempt, self.max_attempts, error)
            if attempt < self.max_attempts and self.retry_delay > 0:
                time.sleep(self.retry_delay)
        reason = f"no usable answer after {self.max_attempts} attempts: {error}"
        return Verdict(None, self.max_attempts, reason, answers)


class OpenAIJudge(Judge):
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LM Studio, ...)."""

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 120.0,
        max_attempts: int = 3,
        retry_delay: float = 1.0,
        max_tokens: int = 300,
    ) -> None:
        import httpx

        super().__init__(max_attempts, retry_delay)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)

    @classmethod
    def from_env(cls, model: str | None = None, **kwargs: Any) -> OpenAIJudge:
        env = os.environ
        base_url = env.get("HUB_JUDGE_BASE_URL") or env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        model = model or env.get("HUB_JUDGE_MODEL") or env.get("OPENAI_MODEL") or "gpt-4o"
        api_key = env.get("HUB_JUDGE_API_KEY") or env.get("OPENAI_API_KEY") or ""
        return cls(base_url, model, api_key, **kwargs)

    @property
    def description(self) -> dict[str, Any]:
        return {**super().description, "base_url": self.base_url, "model": self.model}  # never the key

    def payload(self, parts: list[Part]) -> dict[str, Any]:
        content = [
            {"type": "text", "text": value}
            if kind == "text"
            else {"type": "image_url", "image_url": {"url": data_url(value)}}
            for kind, value in parts
        ]
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }

    def ask(self, parts: list[Part]) -> str:
        response = self.client.post(f"{self.base_url}/chat/completions", json=self.payload(parts))
        if response.status_code in {400, 401, 403, 404}:
            raise FatalJudgeError(f"HTTP {response.status_code}: {response.text[:200]}")
        response.raise_for_status()
        choice = response.json()["choices"][0]
        message = choice.get("message") or {}
        if message.get("refusal"):
            raise AnswerError(f"refused: {str(message['refusal'])[:120]}")
        if choice.get("finish_reason") == "content_filter":
            raise AnswerError("refused: the endpoint's content filter stopped the answer")
        return message.get("content") or ""

    def close(self) -> None:
        self.client.close()


class LocalJudge(Judge):
    """A transformers vision-language model (``AutoModelForImageTextToText``) by id, loaded at first use."""

    kind = "local"

    def __init__(self, model_id: str, device: str = "auto", max_attempts: int = 3, max_new_tokens: int = 120) -> None:
        super().__init__(max_attempts, retry_delay=0.0)
        self.model_id = model_id
        self.device = device
        self.max_new_tokens = max_new_tokens
        self._model: Any = None
        self._processor: Any = None

    @property
    def description(self) -> dict[str, Any]:
        return {**super().description, "model": self.model_id}

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from methods.core.backbone import pick_device

        device, dtype = pick_device(self.device)
        self._processor = AutoProcessor.from_pretrained(self.model_id)
        self._model = AutoModelForImageTextToText.from_pretrained(self.model_id, dtype=dtype).to(device).eval()
        self._model.requires_grad_(False)
        torch.manual_seed(0)

    def messages(self, parts: list[Part]) -> list[dict[str, Any]]:
        content = [{"type": "text", "text": v} if k == "text" else {"type": "image", "image": v} for k, v in parts]
        return [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
            {"role": "user", "content": content},
        ]

    def ask(self, parts: list[Part]) -> str:
        import torch

        if self._model is None:
            try:
                self._load()
            except Exception as error:  # noqa: BLE001 - a missing model is not worth retrying
                raise FatalJudgeError(f"could not load {self.model_id}: {error}") from None
        inputs = self._processor.apply_chat_template(
            self.messages(parts), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        ).to(self._model.device)
        with torch.no_grad():
            generated = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        return self._processor.batch_decode(new_tokens, skip_special_tokens=True)[0]


def make_judge(kind: str, **kwargs: Any) -> Judge | None:
    """``none`` -> None; ``openai`` -> OpenAIJudge from the environment; ``local`` -> LocalJudge(model id)."""
    if kind == "none":
        return None
    model_id = kwargs.pop("model_id", None)
    if kind == "openai":
        return OpenAIJudge.from_env(model_id, **kwargs)
    if kind == "local":
        model_id = model_id or os.environ.get("HUB_JUDGE_MODEL")
        if not model_id:
            raise ValueError("The local judge needs a model id: set HUB_JUDGE_MODEL or pass --judge-model.")
        return LocalJudge(model_id, **kwargs)
    raise ValueError(f"unknown judge {kind!r}; choose one of {', '.join(JUDGE_KINDS)}")
