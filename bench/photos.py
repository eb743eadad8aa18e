"""Photos for the triage benchmarks: skin-textured JPEGs with a dark lesion, each one distinct.

A photo's fine detail is what makes JPEG decoding and encoding work hard (flat colour is nearly free),
so the texture is blurred noise around skin tones rather than a plain fill.
"""

from __future__ import annotations

import functools
import io
import random

from PIL import Image, ImageDraw, ImageFilter

# The size the patient page downscales a photo to before uploading it.
BROWSER_SIZE = (1280, 960)


@functools.cache
def skin_texture(seed: int, size: tuple[int, int] = BROWSER_SIZE) -> Image.Image:
    """Skin-toned texture: grain of a few pixels around a skin colour."""
    noise = Image.frombytes("L", size, random.Random(seed).randbytes(size[0] * size[1]))
    grain = noise.filter(ImageFilter.GaussianBlur(2))
    return Image.merge("RGB", [grain.point(lambda v, base=base: base + v // 6) for base in (190, 140, 115)])


def lesion_photo(seed: int, index: int, size: tuple[int, int] = BROWSER_SIZE) -> Image.Image:
    """The texture of `seed` with a lesion placed and shaded by `index`, and the pair written in a corner."""
    image = skin_texture(seed, size).copy()
    width, height = size
    draw = ImageDraw.Draw(image)
    # At 1280x960: x 400..699, y 300..499, 260-309 by 200 pixels.
    x = width * 5 // 16 + (index * 7) % (width * 15 // 64)
    y = height * 5 // 16 + (seed * 11) % (height * 5 // 24)
    draw.ellipse((x, y, x + width * 13 // 64 + index % 50, y + height * 5 // 24), fill=(90 + index % 60, 55, 40))
    draw.text((10, 10), f"{seed}-{index}", fill=(0, 0, 0))
    return image


def photo_bytes(seed: int, index: int, size: tuple[int, int] = BROWSER_SIZE, **save_options) -> bytes:
    """A distinct JPEG per (seed, index), so no upload is a duplicate of another; `save_options` go to
    Pillow's JPEG writer (exif=..., icc_profile=...)."""
    out = io.BytesIO()
    lesion_photo(seed, index, size).save(out, format="JPEG", quality=85, **save_options)
    return out.getvalue()
