"""The one preprocessing path from any photo to the classifier's input.

Training, evaluation and serving all go through `prepare_uint8` (decode
orientation and mode, squash the whole image to a square, colour constancy)
and `to_model_input` (scale to [-1, 1]); `preprocess` is the two together.
Training stores `prepare_uint8` at a larger canvas and applies its random
crops and colour jitter between the two steps.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# Shades-of-grey colour constancy (Finlayson & Trezzi 2004): the Minkowski
# norm of each channel estimates the illuminant; p=6 is the usual choice for
# dermoscopy (Barata et al. 2015).
SHADES_OF_GREY_P = 6.0
MAX_GAIN = 3.0
# Transparent pixels are composed over neutral grey so they do not tint the
# illuminant estimate.
ALPHA_BACKGROUND = (128, 128, 128)


def to_rgb(image: Image.Image) -> Image.Image:
    """Applies EXIF orientation and converts any Pillow mode to 8-bit RGB."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith('I;16') or arr.max() > 255 else 255.0
        if mode == 'F':
            top = max(float(arr.max()), 1.0) if arr.max() > 1.0 else 1.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(arr, mode='L')
        mode = 'L'
    if mode == 'P' and 'transparency' in image.info:
        image = image.convert('RGBA')
        mode = 'RGBA'
    if mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert('RGB')
    if mode != 'RGB':
        image = image.convert('RGB')
    return image


_LEVELS = np.arange(256, dtype=np.float64) / 255.0
_CHANNEL_OFFSET = np.array([0, 256, 512], dtype=np.intp)


def shades_of_grey(rgb: np.ndarray, p: float = SHADES_OF_GREY_P) -> np.ndarray:
    """uint8 H x W x 3 -> uint8, each channel rescaled so the estimated illuminant is grey.

    Works on per-channel histograms and 256-entry lookup tables: cheap at any size.
    """
    # One index space for the three channels: value + 256 * channel.
    idx = rgb.reshape(-1, 3).astype(np.intp) + _CHANNEL_OFFSET
    hist = np.bincount(idx.ravel(), minlength=768).reshape(3, 256)
    illuminant = (hist @ (_LEVELS**p) / idx.shape[0]) ** (1.0 / p)
    illuminant = np.maximum(illuminant, 1e-6)
    gain = np.clip(illuminant.mean() / illuminant, 1.0 / MAX_GAIN, MAX_GAIN)
    lut = np.clip(np.arange(256)[None, :] * gain[:, None] + 0.5, 0, 255).astype(np.uint8)
    return lut.ravel()[idx].reshape(rgb.shape)


def prepare_uint8(image: Image.Image, size: int) -> np.ndarray:
    """Photo -> size x size x 3 uint8: oriented, RGB, whole image squashed, colour-normalised."""
    image = to_rgb(image)
    if image.size != (size, size):
        # Large photos: a cheap integer reduction first, then a filtered resize.
        factor = min(image.size) // (2 * size)
        if factor >= 2:
            image = image.reduce(factor)
        image = image.resize((size, size), Image.BILINEAR)
    return shades_of_grey(np.asarray(image, dtype=np.uint8))


def to_model_input(pixels) -> np.ndarray:
    """uint8 (or float in [0, 255]) pixels -> float32 in [-1, 1]; works on numpy and jax arrays."""
    return pixels.astype(np.float32) * np.float32(1.0 / 127.5) - np.float32(1.0)


def preprocess(image: Image.Image, size: int) -> np.ndarray:
    """Any PIL photo -> the model's float32 size x size x 3 input."""
    return to_model_input(prepare_uint8(image, size))
