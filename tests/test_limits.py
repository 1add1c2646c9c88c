"""The checks every client value goes through: finite numbers in range, short value renderings, no paths."""

from __future__ import annotations

import math

import pytest

from methods.core.limits import InputError, denoising_steps, finite_number, scrub, shown
from methods.core.spec import BoolParam, ChoiceParam, IntParam


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "abc", True, None, [1], {"a": 1}])
def test_finite_number_refuses_what_is_not_a_finite_number(value) -> None:
    with pytest.raises(InputError, match="“Steps”"):
        finite_number(value, "“Steps”", 1, 100)


def test_finite_number_accepts_numbers_and_numeric_text_in_range() -> None:
    assert finite_number("7", "x", 1, 100) == 7.0 and finite_number(2.5, "x", 1, 100) == 2.5
    with pytest.raises(InputError, match="between 1 and 100; got 101"):
        finite_number(101, "x", 1, 100)


def test_params_name_their_method_and_type() -> None:
    with pytest.raises(InputError, match="“iterations” of DragDiffusion must be a finite number; got NaN"):
        IntParam("iterations", 40, 1, 200).coerce(math.nan, "DragDiffusion")
    assert BoolParam("flag", False).coerce("true") is True
    with pytest.raises(InputError, match="true or false"):
        BoolParam("flag", False).coerce("maybe")
    with pytest.raises(InputError, match="one of a, b; got “c”"):
        ChoiceParam("mode", "a", ("a", "b")).coerce("c")


def test_shown_is_short_and_never_a_repr() -> None:
    assert shown("x" * 100).endswith("…”") and len(shown("x" * 100)) < 50
    assert shown([1, 2, 3]) == "a list of 3" and shown(None) == "nothing" and shown(2147483647.0) == "2147483647"
    assert shown(object()) == "a value of another kind"


def test_scrub_keeps_the_file_name_only() -> None:
    message = "Error opening '/tmp/gradio/ab12/clip.wav': Format not recognised (C:\\Users\\me\\x.png)"
    assert scrub(message) == "Error opening 'clip.wav': Format not recognised (x.png)"


def test_denoising_steps_refuses_zero() -> None:
    assert denoising_steps(4, 0.75) == 3 and denoising_steps(10, 1.0) == 10
    with pytest.raises(InputError, match="leaves no denoising step"):
        denoising_steps(1, 0.75)
