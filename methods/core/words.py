"""Prompt words and their token positions in the padded prompt (start-of-text at 0), for methods that act on
the cross-attention maps of chosen words (Prompt-to-Prompt's mapping, re-weighting and local blend; box
layouts that tie a phrase to a region)."""

from __future__ import annotations

import re
from typing import Any

Words = list[tuple[str, list[int]]]  # (normalised word, its token positions in the padded prompt; BOS = 0)


def normalise(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


def word_set(text: str) -> set[str]:
    """The words of a comma- or space-separated list, normalised."""
    return {normalise(w) for w in re.split(r"[,\s]+", text) if normalise(w)}


def prompt_words(tokenizer: Any, prompt: str) -> tuple[Words, int]:
    """The prompt's words with their token positions, and the position of its end-of-text token."""
    limit = tokenizer.model_max_length - 1  # the last slot always holds end-of-text
    words, position = [], 1
    for word in prompt.split():
        count = len(tokenizer(word, add_special_tokens=False).input_ids)
        words.append((normalise(word), [p for p in range(position, position + count) if p < limit]))
        position += count
    return words, min(position, limit)


def positions(words: Words, chosen: set[str]) -> list[int]:
    return [p for word, places in words if word in chosen for p in places]
