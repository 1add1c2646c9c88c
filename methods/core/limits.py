"""Bounds on what one request may ask for, and the checks every number and list from a client goes through.

A public Space gets hostile input: NaN and infinity (JSON's ``NaN`` literal reaches the server), strings where
numbers belong, thousands of points. Every check here raises :class:`InputError` with a sentence that names the
field and says what is allowed; messages show values briefly (never a Python repr, a whole list or a path).
The time a request may hold the GPU slot is a setting (``Settings.max_request_seconds``), not a constant.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sized
from typing import Any

import numpy as np


class InputError(ValueError):
    """An input the user can fix (missing mask, empty prompt...). Its message says what to do."""


MAX_DRAG_PAIRS = 16  # handle -> target pairs per request
MAX_DRAG_POINT_ITERATIONS = 16 * 80  # pairs x optimisation iterations (the paper: 80 iterations)
MAX_BOXES = 16  # layout boxes
MAX_CLICKS = 32  # Segment Anything / region clicks
MAX_TEXT_CHARS = 10_000  # any text box (a prompt: CLIP reads 77 tokens; points, boxes, keypoints as JSON)
MAX_LABELS = 200  # sound labels of a CLAP vocabulary (each one is a text embedding per clip)
MAX_SHOWN_CHARS = 40  # a value quoted back in a message is cut to this


def shown(value: Any) -> str:
    """A short, plain rendering of a client's value for a message: no reprs, no long lists."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else ("infinity" if math.isinf(value) else number_text(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = " ".join(value.split())
        return f"“{text[:MAX_SHOWN_CHARS]}…”" if len(text) > MAX_SHOWN_CHARS else f"“{text}”"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return "a value of another kind"


def is_number(value: Any) -> bool:
    """A real number (int or float, numpy scalars included), not a boolean; may still be NaN or infinite."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def finite_number(value: Any, what: str, minimum: float | None = None, maximum: float | None = None) -> float:
    """``value`` as a finite float within [minimum, maximum]; numeric strings are accepted, booleans are not."""
    number: float | None = None
    if is_number(value):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise InputError(f"{_capital(what)} must be a number; got {shown(value)}.")
    if not math.isfinite(number):
        raise InputError(f"{_capital(what)} must be a finite number; got {shown(number)}.")
    low_ok = minimum is None or number >= minimum
    high_ok = maximum is None or number <= maximum
    if not (low_ok and high_ok):
        raise InputError(f"{_capital(what)} must lie between {_range(minimum, maximum)}; got {number_text(number)}.")
    return number


def at_most(items: Sized, cap: int, what: str, hint: str = "") -> None:
    """Refuse more than ``cap`` items (points, boxes, labels): each one costs work on the shared GPU."""
    if len(items) > cap:
        extra = f" {hint}" if hint else ""
        raise InputError(f"At most {cap} {what} per request; got {len(items)}.{extra}")


def text_field(value: Any, what: str, cap: int = MAX_TEXT_CHARS) -> str:
    """A text field's value (None = empty), refused when it is not text or longer than ``cap`` characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{_capital(what)} must be text; got {shown(value)}.")
    if len(value) > cap:
        raise InputError(f"{_capital(what)} is {len(value)} characters long; please keep it under {cap}.")
    return value


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-~+@%]+){2,}[\\/]?")


def scrub(message: str) -> str:
    """A message without server paths (each one becomes its last part, e.g. ``clip.wav``)."""
    return _PATH.sub(lambda match: re.split(r"[\\/]", match.group(0).rstrip("\\/"))[-1] or "…", message)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def number_text(number: float) -> str:
    """2147483647, 0.5, 1e-06: whole numbers in full, others short."""
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e15 else f"{number:g}"


def _range(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{number_text(minimum)} and {number_text(maximum)}"
    if minimum is not None:
        return f"{number_text(minimum)} and infinity"
    return f"minus infinity and {number_text(maximum)}"


def denoising_steps(steps: int, strength: float) -> int:
    """The steps an image-to-image call denoises: int(steps × strength), as diffusers counts them. Zero is refused
    with a sentence (diffusers would fail deep inside with an empty tensor)."""
    done = min(int(steps * strength), steps)
    if done < 1:
        raise InputError(
            f"Strength {strength:g} × {steps} step{'s' if steps != 1 else ''} leaves no denoising step; "
            "use more steps or a higher strength."
        )
    return done
