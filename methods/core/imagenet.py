"""The 1000 ImageNet-1k class names (the label space of class-conditional models such as DiT).

The names come from torchvision, which ships them with its weights metadata, so nothing is downloaded.
They are torchvision's short, unique names in class-id order (0 = "tench", 207 = "golden retriever",
281 = "tabby", ...), not the long WordNet synonym lists of the original synsets.
"""

from __future__ import annotations

import difflib
import re
from functools import cache

from methods.core.limits import InputError, shown

NUM_CLASSES = 1000


@cache
def class_names() -> list[str]:
    """The 1000 class names, index = ImageNet class id."""
    # torchvision keeps this list in a private module; it is the same list its weights' `meta["categories"]` use.
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    names = list(_IMAGENET_CATEGORIES)
    if len(names) != NUM_CLASSES:
        raise RuntimeError(f"expected {NUM_CLASSES} ImageNet class names from torchvision, found {len(names)}")
    return names


@cache
def _by_name() -> dict[str, int]:
    return {name.lower(): index for index, name in enumerate(class_names())}


def class_label(index: int) -> str:
    """``"281 tabby"``: the id and the name, as shown in captions and dropdowns."""
    return f"{index} {class_names()[index]}"


def class_index(name_or_index: int | str) -> int:
    """An ImageNet class id from an id (``281``, ``"281"``), a name (``"tabby"``) or a label (``"281 tabby"``).

    Raises InputError for an unknown class, naming a few close class names.
    """
    if isinstance(name_or_index, bool):
        raise InputError(f"{shown(name_or_index)} is not an ImageNet class; give an id 0-999 or a class name.")
    if isinstance(name_or_index, int):
        if 0 <= name_or_index < NUM_CLASSES:
            return name_or_index
        raise InputError(f"ImageNet class ids run from 0 to 999; got {name_or_index}.")
    text = str(name_or_index).strip()
    labelled = re.fullmatch(r"(\d+)\s*[:.\-]?\s*(.*)", text)
    if labelled:
        index = class_index(int(labelled.group(1)))
        name = labelled.group(2).strip().lower()
        if name and name != class_names()[index].lower():
            raise InputError(f"Class id {index} is “{class_names()[index]}”, not {shown(labelled.group(2).strip())}.")
        return index
    index = _by_name().get(text.lower())
    if index is not None:
        return index
    close = difflib.get_close_matches(text.lower(), list(_by_name()), n=5, cutoff=0.5)
    hint = f" Close names: {', '.join(close)}." if close else " Give an id 0-999 or pick a name from the list."
    raise InputError(f"{shown(text)} is not an ImageNet class.{hint}")
