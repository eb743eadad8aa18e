"""The images the photo gate is fitted and checked on: labelled folders' splits, and bad photos made from them.

A labelled folder holds labels.csv (with `image_id` and `split` columns) and images/<image_id>.jpg, the
layout of the team's copies of HAM10000, ISIC 2017 and ISIC 2020. The degradations copy what goes wrong
with a phone: shake or missed focus, a dark room, a flash, a photo taken from too far away.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

# Gaussian blur radius as a share of the photo's long side: a missed focus at arm's length.
BLUR_SHARE = 0.03
DARK_GAIN = 0.15
BRIGHT_GAIN = 3.5
# The lesion photographed from this many times further away: it covers 1/36 of the frame.
TINY_SCALE = 1 / 6


def split_paths(folder: Path, splits: Sequence[str]) -> list[Path]:
    with open(folder / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] in splits]
    return [folder / "images" / f"{r['image_id']}.jpg" for r in rows]


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def blurred(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(BLUR_SHARE * max(image.size)))


def _gain(image: Image.Image, gain: float) -> Image.Image:
    pixels = np.asarray(image, np.float32) * gain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def too_dark(image: Image.Image) -> Image.Image:
    return _gain(image, DARK_GAIN)


def too_bright(image: Image.Image) -> Image.Image:
    return _gain(image, BRIGHT_GAIN)


def tiny_lesion(image: Image.Image) -> Image.Image:
    """The photo shrunk into the middle of a frame of skin colour (the median of its brighter half)."""
    pixels = np.asarray(image).reshape(-1, 3)
    brightness = pixels.sum(axis=1)
    skin = tuple(int(v) for v in np.median(pixels[brightness >= np.median(brightness)], axis=0))
    canvas = Image.new("RGB", image.size, skin)
    small = image.resize(
        (max(1, round(image.width * TINY_SCALE)), max(1, round(image.height * TINY_SCALE))), Image.Resampling.BILINEAR
    )
    canvas.paste(small, ((image.width - small.width) // 2, (image.height - small.height) // 2))
    return canvas


DEGRADATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "blurred": blurred,
    "too_dark": too_dark,
    "too_bright": too_bright,
    "lesion_too_small": tiny_lesion,
}


def images(paths: Sequence[Path]) -> Iterator[tuple[Path, Image.Image]]:
    for path in paths:
        yield path, open_rgb(path)
