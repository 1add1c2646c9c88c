"""The condition cell: what the methods were given, shown first in every grid."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from methods.core.images import draw_boxes, draw_drags, mask_overlay, text_card
from methods.core.spec import Audio, Condition, EditInputs


def _side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    height = max(left.height, right.height)
    left = ImageOps.contain(left, (height * 4, height))
    right = ImageOps.contain(right, (height * 4, height))
    canvas = Image.new("RGB", (left.width + right.width + 4, height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 4, 0))
    return canvas


def spectrogram(audio: Audio, size: tuple[int, int]) -> Image.Image:
    """A log-magnitude spectrogram picture of the clip (for the condition cell)."""
    from scipy.signal import spectrogram as scipy_spectrogram

    _, _, power = scipy_spectrogram(audio.waveform, fs=audio.sampling_rate, nperseg=512, noverlap=384)
    log_power = np.log10(power + 1e-10)
    low, high = np.percentile(log_power, [5, 99.5])
    scaled = np.clip((log_power - low) / max(high - low, 1e-6), 0, 1)[::-1]
    picture = Image.fromarray((scaled * 255).astype(np.uint8), "L").resize(size)
    return ImageOps.colorize(picture, black=(10, 10, 40), white=(255, 220, 80), mid=(200, 40, 120))


def condition_cell(condition: Condition | str, inputs: EditInputs) -> tuple[Image.Image, str]:
    condition = Condition(condition)
    image = inputs.image
    size = image.size if image is not None else (256, 256)
    prompt = f"prompt: “{inputs.prompt}”" if inputs.prompt else "no prompt"
    if condition is Condition.TEXT:
        source = f" · source: “{inputs.source_prompt}”" if inputs.source_prompt else ""
        return image, f"Source{source} · target {prompt}"
    if condition is Condition.MASK:
        if inputs.mask is None:  # outpainting needs no mask; the methods that do are skipped
            return image, f"Source, no mask (only methods that make their own mask run) · {prompt}"
        return mask_overlay(image, inputs.mask), f"Source with mask (red = region to edit) · {prompt}"
    if condition is Condition.REFERENCE:
        if image is None:
            return inputs.reference, f"Reference image (no source: generation) · {prompt}"
        source = mask_overlay(image, inputs.mask) if inputs.mask is not None else image
        masked = " (red = mask)" if inputs.mask is not None else ""
        return _side_by_side(source, inputs.reference), f"Source{masked} | reference · {prompt}"
    if condition in {Condition.POSE, Condition.SKETCH, Condition.SEGMENTATION}:
        extra = inputs.notes.get("condition_caption", "")
        return (
            inputs.control_image,
            f"{condition.title} given to the methods{' · ' + extra if extra else ''} · {prompt}",
        )
    if condition is Condition.LAYOUT:
        canvas = image if image is not None else Image.new("RGB", size, (235, 235, 235))
        phrases = ", ".join(f"[{b.phrase}]" for b in inputs.boxes)
        return draw_boxes(canvas, inputs.boxes), f"Layout: {phrases} · {prompt}"
    if condition is Condition.DRAG:
        pairs = "; ".join(f"{d.handle}→{d.target}" for d in inputs.drags)
        masked = "mask = editable region (bright)" if inputs.mask is not None else "no mask: whole image editable"
        return draw_drags(image, inputs.drags, inputs.mask), f"Drag handle (red) → target (blue): {pairs} · {masked}"
    if condition is Condition.AUDIO:
        tags = inputs.notes.get("tags") or []
        tag_text = ", ".join(f"{label} {score:.2f}" for label, score in tags) or "no tags"
        picture = spectrogram(inputs.audio, size) if inputs.audio is not None else text_card("no audio", size)
        return picture, f"Audio {inputs.audio.seconds:.1f}s · CLAP tags: {tag_text}"
    if condition is Condition.CLASS:
        source = inputs.notes.get("source_class_name", inputs.source_class)
        target = inputs.notes.get("target_class_name", inputs.target_class)
        return image, f"Class translation: {source} → {target}"
    raise ValueError(condition)


def inputs_summary(inputs: EditInputs) -> dict[str, object]:
    """The non-image inputs of a run, for the downloadable record."""
    return {
        "image_size": list(inputs.image.size) if inputs.image is not None else None,
        "prompt": inputs.prompt,
        "source_prompt": inputs.source_prompt,
        "negative_prompt": inputs.negative_prompt,
        "has_mask": inputs.mask is not None,
        "boxes": [dict(phrase=b.phrase, box=b.as_list()) for b in inputs.boxes],
        "drags": [dict(handle=list(d.handle), target=list(d.target)) for d in inputs.drags],
        "audio_seconds": inputs.audio.seconds if inputs.audio is not None else None,
        "source_class": inputs.source_class,
        "target_class": inputs.target_class,
        "steps": inputs.steps,
        "guidance": inputs.guidance,
        "notes": {k: v for k, v in inputs.notes.items() if isinstance(v, str | int | float | list)},
    }
