"""Regenerate the example files in assets/ (see assets/README.md for each file and its licence).

Two kinds: the drawn and synthesised files (a house, its mask, a sketch, a segmentation map, a pattern, two
sounds; CC0), and real photos copied from the sample data that scikit-image installs (it comes with
controlnet_aux), resized so that the longest side is 512, with the condition inputs drawn for them here (masks,
an edge sketch, ADE20K maps). Both are deterministic: rerunning leaves every file byte-identical.

python assets/make_assets.py [--only drawn|photos] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from methods.core.segmap import class_color  # noqa: E402
from methods.core.spec import InputError  # noqa: E402

logger = logging.getLogger(__name__)

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


def write_drawn(out: Path) -> None:
    """The drawn and synthesised files."""
    house().save(out / "house.png")
    house_mask().save(out / "house_mask.png")
    sketch().save(out / "sketch_house.png")
    segmap().save(out / "segmap_village.png")
    reference_pattern().save(out / "reference_pattern.png")
    sf.write(out / "rain.wav", rain(), 48_000, subtype="PCM_16")
    sf.write(out / "bell.wav", bell(), 48_000, subtype="PCM_16")


# -- real photos from scikit-image's sample data -------------------------------------------------------------
# The file written here -> its file in the installed skimage/data folder. Each one's source, author and licence
# (as scikit-image's skimage.data docstrings state them) are in assets/README.md.
SKIMAGE_PHOTOS: dict[str, str] = {
    "chelsea.jpg": "chelsea.png",
    "coffee.jpg": "coffee.png",
    "astronaut.jpg": "astronaut.png",
    "rocket.jpg": "rocket.jpg",
    "hubble_deep_field.jpg": "hubble_deep_field.jpg",
}
PHOTO_SIDE = 512
JPEG_QUALITY = 90


def skimage_data() -> Path:
    """The folder of sample images the installed scikit-image ships."""
    try:
        import skimage.data
    except ImportError:
        message = "scikit-image is not installed; install it (pip install scikit-image) to copy the photos."
        raise InputError(message) from None
    return Path(skimage.data.__file__).parent


def skimage_photo(name: str) -> Image.Image:
    """The photo written as ``name``: scikit-image's sample, RGB, resized so that its longest side is 512."""
    path = skimage_data() / SKIMAGE_PHOTOS[name]
    if not path.is_file():
        raise InputError(f"scikit-image's sample photo {path.name} is missing; reinstall scikit-image.")
    with Image.open(path) as image:
        photo = image.convert("RGB")
    scale = PHOTO_SIDE / max(photo.size)
    return photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)


# The condition inputs drawn for the photos. Coordinates are pixels of the resized photo (longest side 512),
# placed by looking at it: chelsea and coffee are 512x341, astronaut 512x512, rocket 512x342.
def _mask(size: tuple[int, int], draw: Callable[[ImageDraw.ImageDraw], None]) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw(ImageDraw.Draw(mask))
    return mask


def chelsea_eyes_mask(size: tuple[int, int]) -> Image.Image:
    """Both of the cat's eyes and the bridge between them: where sunglasses go."""

    def draw(pen: ImageDraw.ImageDraw) -> None:
        pen.ellipse((132, 78, 254, 186), fill=255)
        pen.ellipse((316, 106, 406, 206), fill=255)
        pen.rectangle((240, 118, 330, 150), fill=255)

    return _mask(size, draw)


def coffee_surface_mask(size: tuple[int, int]) -> Image.Image:
    """The surface of the coffee inside the cup's rim."""
    return _mask(size, lambda pen: pen.ellipse((172, 80, 320, 164), fill=255))


def astronaut_helmet_mask(size: tuple[int, int]) -> Image.Image:
    """The helmet in the astronaut's left arm (bottom right), with a margin."""
    return _mask(size, lambda pen: pen.ellipse((268, 332, 524, 600), fill=255))


def astronaut_arm_mask(size: tuple[int, int]) -> Image.Image:
    """The astronaut's right arm (image left) and the space above it, where a raised arm goes."""
    return _mask(size, lambda pen: pen.rectangle((0, 30, 165, size[1]), fill=255))


def chelsea_sketch(photo: Image.Image) -> Image.Image:
    """An edge sketch of the cat: Canny edges (sigma 3) as 3-pixel black lines on white."""
    from skimage.feature import canny

    gray = np.asarray(photo.convert("L"), dtype=np.float64) / 255.0
    edges = canny(gray, sigma=3.0, low_threshold=0.05, high_threshold=0.15)
    page = Image.fromarray(np.where(edges, 0, 255).astype(np.uint8), "L")
    return page.filter(ImageFilter.MinFilter(3)).convert("RGB")


def coffee_segmap(size: tuple[int, int]) -> Image.Image:
    """ADE20K colours: table everywhere, the saucer as plate, the cup as glass, the coffee as food."""
    canvas = Image.new("RGB", size, class_color("table"))
    pen = ImageDraw.Draw(canvas)
    pen.ellipse((64, 60, 410, 330), fill=class_color("plate"))
    pen.ellipse((164, 194, 224, 264), fill=class_color("glass"))  # the handle
    pen.polygon([(150, 96), (348, 96), (322, 242), (176, 242)], fill=class_color("glass"))
    pen.ellipse((148, 14, 350, 176), fill=class_color("glass"))
    pen.ellipse((172, 80, 320, 164), fill=class_color("food"))
    return canvas


def rocket_segmap(size: tuple[int, int]) -> Image.Image:
    """ADE20K colours: sky, the two launch towers, the lightning rods and the rocket as tower, the ground as land."""
    width, height = size
    canvas = Image.new("RGB", size, class_color("sky"))
    pen = ImageDraw.Draw(canvas)
    tower = class_color("tower")
    pen.polygon([(30, 0), (68, 0), (64, height), (0, height), (0, 200)], fill=tower)
    pen.polygon([(448, 0), (500, 0), (width, 60), (width, height), (465, height)], fill=tower)
    pen.polygon([(157, 98), (163, 98), (166, 320), (130, 320)], fill=tower)
    pen.polygon([(353, 98), (360, 98), (383, 320), (350, 320)], fill=tower)
    pen.rectangle((247, 106, 268, 320), fill=tower)
    pen.ellipse((247, 98, 268, 116), fill=tower)
    pen.rectangle((0, 300, width, height), fill=class_color("land"))
    return canvas


def write_photos(out: Path) -> None:
    """The photos (JPEG) and the condition inputs drawn for them (PNG)."""
    photos = {name: skimage_photo(name) for name in SKIMAGE_PHOTOS}
    for name, photo in photos.items():
        photo.save(out / name, quality=JPEG_QUALITY)
    chelsea, coffee, astronaut, rocket = (photos[f"{n}.jpg"].size for n in ("chelsea", "coffee", "astronaut", "rocket"))
    chelsea_eyes_mask(chelsea).save(out / "chelsea_eyes_mask.png")
    coffee_surface_mask(coffee).save(out / "coffee_mask.png")
    astronaut_helmet_mask(astronaut).save(out / "astronaut_helmet_mask.png")
    astronaut_arm_mask(astronaut).save(out / "astronaut_arm_mask.png")
    chelsea_sketch(photos["chelsea.jpg"]).save(out / "chelsea_sketch.png")
    coffee_segmap(coffee).save(out / "coffee_segmap.png")
    rocket_segmap(rocket).save(out / "rocket_segmap.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the example files in assets/.")
    parser.add_argument("--only", choices=("drawn", "photos"), help="write only the drawn files, or only the photos")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: assets/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only != "photos":
        write_drawn(args.out)
    if args.only != "drawn":
        write_photos(args.out)
    logger.info("wrote the example files into %s", args.out)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
