"""The app's one gate for errors: whatever a client sends and whatever a handler raises, the visitor reads a
sentence — never a blank error, a stack trace, a Python repr or a server path.

``HubBlocks`` is ``gr.Blocks`` with two hooks. Gradio's own input processing (a string where a number belongs,
``null`` for a list, a file that is not an image, a choice that does not exist, a decompression bomb) is turned
into a sentence naming the field; Gradio would otherwise answer with an empty error (``show_error=False``) or
print its whole list of choices. A handler's ``InputError`` becomes its message; any other exception is logged
with its trace and the visitor is told it was an internal error.
"""

from __future__ import annotations

import difflib
import logging
import re
from typing import Any

import gradio as gr
from gradio.exceptions import ComponentProcessingError
from PIL import Image
from pydantic import ValidationError

from methods.core.images import too_large, unreadable
from methods.core.limits import InputError, finite_number, is_number, number_text, shown
from methods.core.registry import get_method

logger = logging.getLogger(__name__)

MAX_LISTED_CHOICES = 8


class HubBlocks(gr.Blocks):
    """``gr.Blocks`` whose failures are sentences (see the module docstring)."""

    async def preprocess_data(self, block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False) -> Any:
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except Exception as error:  # noqa: BLE001 - gradio's messages name internals; ours name the field
            sentence = input_sentence(list(block_fn.inputs), inputs, error)
            logger.info("refused an input of %s: %s", block_fn.name, sentence)
            raise gr.Error(sentence, print_exception=False) from None

    async def call_function(self, block_fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().call_function(block_fn, *args, **kwargs)
        except gr.Error:
            raise
        except InputError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:  # noqa: BLE001 - a bug must still answer with a sentence
            logger.exception("handler %s failed", block_fn.name)
            raise gr.Error(
                f"Something went wrong on the server ({type(error).__name__}); it has been logged. "
                "Please try again, or change the inputs.",
                print_exception=False,
            ) from None


# -- which input, and what to say -------------------------------------------------------------------------------
def input_sentence(blocks: list[Any], values: list[Any], error: BaseException) -> str:
    if len(values) < len(blocks):  # gradio's own check (validate_inputs) prints every component's repr
        return f"This endpoint takes {len(blocks)} values; got {len(values)}. The API page lists them in order."
    index = _failing_index(blocks, values, error)
    if index is None or index >= len(blocks):
        return "One of the inputs could not be read. Please check the values you sent (see the API page)."
    block, value = blocks[index], values[index] if index < len(values) else None
    return component_sentence(block, value, error)


def component_sentence(block: Any, value: Any, error: BaseException) -> str:
    """What to tell the visitor when ``block`` could not read ``value``."""
    what = name_of(block)
    if _in_chain(error, Image.DecompressionBombError):
        return str(too_large(what))
    if _has_choices(block):
        return _choice_sentence(what, block, value)
    if isinstance(block, gr.Number | gr.Slider):
        bounds = ""
        if getattr(block, "minimum", None) is not None and getattr(block, "maximum", None) is not None:
            bounds = f" between {number_text(block.minimum)} and {number_text(block.maximum)}"
        return f"{what} must be a number{bounds}; got {shown(value)}."
    if isinstance(block, gr.Checkbox):
        return f"{what} must be true or false; got {shown(value)}."
    if isinstance(block, gr.Audio):
        return f"{what} could not be read as audio. Please upload a WAV, FLAC, OGG or MP3 file."
    if isinstance(block, gr.ImageEditor):
        return (
            f"{what} could not be read: send an image (PNG, JPEG or WebP) as its background and/or layers, or nothing."
        )
    if isinstance(block, gr.Image):
        return str(unreadable(what))
    if isinstance(block, gr.Textbox):
        return f"{what} must be text; got {shown(value)}."
    return f"{what} could not be read; got {shown(value)}."


def name_of(block: Any) -> str:
    """The widget as a message names it: “label”, and for a method parameter (elem_id ``method__param``) also
    the method, since several methods have a “strength”."""
    label = str(getattr(block, "label", None) or getattr(block, "elem_id", None) or "an input").strip()
    method, _, param = str(getattr(block, "elem_id", None) or "").partition("__")
    if param:
        try:
            return f"“{label}” of {get_method(method).label}"
        except KeyError:
            pass
    return f"“{label}”"


def _failing_index(blocks: list[Any], values: list[Any], error: BaseException) -> int | None:
    if isinstance(error, ComponentProcessingError):  # gradio names the position in its message
        found = re.search(r"component at index (\d+)", str(error))
        if found:
            return int(found.group(1))
    for index, block in enumerate(blocks):  # otherwise: the first input that does not validate
        value = values[index] if index < len(values) else None
        if _has_choices(block) and not _choices_ok(block, value):
            return index
        if isinstance(block, gr.Number | gr.Slider) and not _number_ok(block, value):
            return index
        model = getattr(block, "data_model", None)
        if model is not None and value is not None:
            try:
                model.model_validate(value, context={"validate_meta": True})
            except (ValidationError, ValueError, TypeError):
                return index
    return None


def _in_chain(error: BaseException | None, kind: type[BaseException]) -> bool:
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


def _number_ok(block: Any, value: Any) -> bool:
    if value is None:
        return True
    try:  # numeric text is not what Gradio's number widgets take: only numbers pass
        return is_number(value) and finite_number(value, "", block.minimum, block.maximum) is not None
    except InputError:
        return False


def _has_choices(block: Any) -> bool:
    return isinstance(block, gr.CheckboxGroup | gr.Dropdown | gr.Radio) and bool(getattr(block, "choices", None))


def _choice_values(block: Any) -> list[Any]:
    return [value for _, value in block.choices]


def _choices_ok(block: Any, value: Any) -> bool:
    if value is None:
        return not isinstance(block, gr.CheckboxGroup)
    if getattr(block, "allow_custom_value", False):
        return True
    values = _choice_values(block)
    if isinstance(value, list):
        return isinstance(block, gr.CheckboxGroup | gr.Dropdown) and all(_hashable_in(v, values) for v in value)
    return not isinstance(block, gr.CheckboxGroup) and _hashable_in(value, values)


def _hashable_in(value: Any, values: list[Any]) -> bool:
    return isinstance(value, str | int | float) and value in values


def _choice_sentence(what: str, block: Any, value: Any) -> str:
    raw = _choice_values(block)
    values = [str(v) for v in raw]
    if isinstance(block, gr.CheckboxGroup) and not isinstance(value, list):
        return f"{what} must be a list of choices; got {shown(value)}."
    wrong = next((v for v in (value if isinstance(value, list) else [value]) if not _hashable_in(v, raw)), value)
    if len(values) <= MAX_LISTED_CHOICES:
        return f"{what} has no choice {shown(wrong)}; choose from: {', '.join(values)}."
    close = difflib.get_close_matches(str(wrong), values, n=5, cutoff=0.5) if isinstance(wrong, str) else []
    hint = f" Close choices: {', '.join(close)}." if close else f" It has {len(values)} choices; see the app's list."
    return f"{what} has no choice {shown(wrong)}.{hint}"
