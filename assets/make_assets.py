"""Regenerate the example files in assets/ (all drawn or synthesised here; CC0, see assets/README.md).

python assets/make_assets.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from methods.core.segmap import class_color  # noqa: E402

HERE = Path(__file__).resolve().parent
W, H = 512, 384


def house() -> Image.Image:
    rng = np.random.default_rng(0)
    sky = np.linspace([110, 160, 235], [200, 225, 250], H)[:, None, :].repeat(W, 1)
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 250, W, H), fill=(76, 145, 62))
    draw.ellipse((400, 30, 470, 100), fill=(252, 222, 90))
    draw.rectangle((140, 170, 330, 300), fill=(196, 96, 70))
    draw.polygon([(120, 172), (235, 95), (350, 172)], fill=(110, 52, 44))
    draw.rectangle((210, 225, 255, 300), fill=(92, 60, 40))
    for x in (160, 275):
        draw.rectangle((x, 195, x + 35, 230), fill=(170, 210, 240), outline=(250, 250, 250), width=3)
    draw.rectangle((420, 170, 434, 290), fill=(100, 70, 45))
    draw.ellipse((385, 105, 470, 200), fill=(45, 120, 50))
    array = np.asarray(image.filter(ImageFilter.GaussianBlur(1.2))).astype(np.int16)
    array += rng.integers(-6, 7, array.shape)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def house_mask() -> Image.Image:
    mask = Image.new("L", (W, H), 0)
    ImageDraw.Draw(mask).rectangle((200, 215, 265, 305), fill=255)
    return mask


def sketch() -> Image.Image:
    page = Image.new("RGB", (W, W), "white")
    draw = ImageDraw.Draw(page)
    draw.line([(60, 400), (450, 400)], fill="black", width=4)
    draw.rectangle((130, 250, 330, 400), outline="black", width=4)
    draw.line([(110, 252), (230, 150), (350, 252)], fill="black", width=4)
    draw.rectangle((205, 320, 250, 400), outline="black", width=4)
    draw.ellipse((360, 170, 460, 290), outline="black", width=4)
    draw.line([(410, 290), (410, 400)], fill="black", width=4)
    return page


def segmap() -> Image.Image:
    canvas = Image.new("RGB", (W, H), class_color("sky"))
    draw = ImageDraw.Draw(canvas)
    draw.polygon(
        [(0, 200), (120, 110), (260, 190), (380, 100), (W, 190), (W, 240), (0, 240)], fill=class_color("mountain")
    )
    draw.rectangle((0, 240, W, H), fill=class_color("grass"))
    draw.rectangle((0, 300, W, H), fill=class_color("water"))
    draw.rectangle((90, 180, 200, 270), fill=class_color("house"))
    draw.ellipse((300, 150, 380, 260), fill=class_color("tree"))
    return canvas


def reference_pattern() -> Image.Image:
    size = 256
    y, x = np.mgrid[0:size, 0:size] / size
    red = 0.5 + 0.5 * np.sin(12 * x + 3 * y)
    green = 0.5 + 0.5 * np.sin(9 * y - 2 * x)
    blue = 0.5 + 0.5 * np.cos(7 * (x + y))
    return Image.fromarray((np.stack([red, green, blue], -1) * 255).astype(np.uint8))


def rain(seconds: float = 4.0, rate: int = 48_000) -> np.ndarray:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, int(seconds * rate))
    smoothed = np.convolve(noise, np.ones(6) / 6, mode="same")
    drops = np.zeros_like(noise)
    drops[rng.integers(0, len(drops), 300)] = rng.uniform(0.5, 1.0, 300)
    drops = np.convolve(drops, np.exp(-np.arange(400) / 60), mode="same")
    return (0.25 * smoothed / np.abs(smoothed).max() + 0.3 * drops / drops.max()).astype(np.float32)


def bell(seconds: float = 3.0, rate: int = 48_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((523.0, 1.0), (1046.0, 0.5), (1569.0, 0.25), (2093.0, 0.12)))
    return (0.4 * tone * np.exp(-1.5 * t) / 1.87).astype(np.float32)


def main() -> None:
    house().save(HERE / "house.png")
    house_mask().save(HERE / "house_mask.png")
    sketch().save(HERE / "sketch_house.png")
    segmap().save(HERE / "segmap_village.png")
    reference_pattern().save(HERE / "reference_pattern.png")
    sf.write(HERE / "rain.wav", rain(), 48_000, subtype="PCM_16")
    sf.write(HERE / "bell.wav", bell(), 48_000, subtype="PCM_16")


if __name__ == "__main__":
    main()
