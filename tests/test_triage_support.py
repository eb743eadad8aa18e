"""Helpers shared by the triage tests (no tests of its own): test photos made with Pillow, good and bad."""
from __future__ import annotations

import io

from PIL import Image

# Degrees as EXIF GPS rationals: 51°30'26" N, 0°7'39" W.
GPS_IFD = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}
GPS_TAG = 0x8825
ORIENTATION_TAG = 0x0112


def lesion(width: int = 900, height: int = 700, seed: int = 0) -> Image.Image:
    """A skin-toned image with a dark blot, different for each seed (so each encodes to its own bytes)."""
    image = Image.new("RGB", (width, height), (224 - seed % 40, 172, 140 + seed % 50))
    blot = Image.new("RGB", (width // 3, height // 3), (90 + seed % 60, 50, 40))
    image.paste(blot, (width // 3 + seed % 17, height // 3))
    return image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def jpeg(width: int = 900, height: int = 700, seed: int = 0, **options) -> bytes:
    return encode(lesion(width, height, seed), "JPEG", quality=90, **options)


def jpeg_with_gps_and_orientation(orientation: int = 6) -> bytes:
    image = lesion(900, 600)
    exif = image.getexif()
    exif[ORIENTATION_TAG] = orientation
    exif[0x010F] = "PhoneMaker"  # camera make
    exif.get_ifd(GPS_TAG).update(GPS_IFD)
    return encode(image, "JPEG", quality=90, exif=exif.tobytes())


def animated(fmt: str) -> bytes:
    frames = [lesion(300, 300, seed) for seed in range(3)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def decompression_bomb_png(side: int = 20_000) -> bytes:
    """A tiny file that claims side x side pixels (a 1-bit image compresses to almost nothing)."""
    return encode(Image.new("1", (side, side)), "PNG")
