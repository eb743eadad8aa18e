"""jax_models.preprocess: one tensor per photo, whatever its orientation, size or mode."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jax_models.preprocess import prepare_uint8, preprocess

FIXTURES = Path(__file__).parent / 'fixtures' / 'ham10000' / 'images'
SIZE = 96

# EXIF orientation -> the transform that, applied to the upright photo, gives the
# stored pixels (the inverse of what a viewer applies to show it upright).
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def photo() -> Image.Image:
    return Image.open(min(FIXTURES.glob('*.jpg'))).convert('RGB')


def roundtrip(image: Image.Image, fmt: str = 'PNG', **kwargs) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    buf.seek(0)
    return Image.open(buf)


@pytest.mark.parametrize('orientation', sorted(STORED_AS))
def test_same_tensor_in_any_exif_orientation(orientation):
    upright = photo()
    stored = upright if STORED_AS[orientation] is None else upright.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    reopened = roundtrip(stored, 'PNG', exif=exif.tobytes())
    assert reopened.getexif().get(0x0112) == orientation
    np.testing.assert_array_equal(preprocess(reopened, SIZE), preprocess(upright, SIZE))


def test_output_contract():
    x = preprocess(photo(), SIZE)
    assert x.shape == (SIZE, SIZE, 3) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize('size', [(1, 1), (3, 1000), (999, 17), (1024, 768), (384, 384), (171, 128)])
def test_odd_sizes_and_aspect_ratios(size):
    x = preprocess(photo().resize(size), SIZE)
    assert x.shape == (SIZE, SIZE, 3) and np.isfinite(x).all()


@pytest.mark.parametrize('mode', ['L', 'LA', 'RGBA', 'P', 'CMYK', '1', 'I', 'F', 'YCbCr'])
def test_any_mode(mode):
    x = preprocess(photo().convert(mode), SIZE)
    assert x.shape == (SIZE, SIZE, 3) and x.dtype == np.float32 and np.isfinite(x).all()


def test_palette_with_transparency_and_rgba_roundtrip():
    rgba = photo().convert('RGBA')
    rgba.putalpha(128)
    x = preprocess(roundtrip(rgba), SIZE)
    assert x.shape == (SIZE, SIZE, 3)
    p = photo().convert('P')
    p.info['transparency'] = 0
    assert preprocess(roundtrip(p, transparency=0), SIZE).shape == (SIZE, SIZE, 3)


def test_16_bit_png_matches_its_8_bit_version():
    grey8 = np.asarray(photo().convert('L'), np.uint16)
    grey16 = Image.fromarray(grey8 * 257)  # full 16-bit range
    reopened = roundtrip(grey16)
    assert reopened.mode.startswith('I')
    a = preprocess(reopened, SIZE)
    b = preprocess(Image.fromarray(grey8.astype(np.uint8)), SIZE)
    assert np.abs(a - b).max() <= 2 / 127.5


def test_greyscale_is_neutral_after_colour_constancy():
    x = prepare_uint8(photo().convert('L'), SIZE).astype(int)
    assert np.abs(x[..., 0] - x[..., 1]).max() <= 1 and np.abs(x[..., 1] - x[..., 2]).max() <= 1


def test_colour_constancy_removes_a_colour_cast():
    rgb = np.asarray(photo(), np.float32)
    cast = Image.fromarray(np.clip(rgb * [1.0, 0.8, 0.6], 0, 255).astype(np.uint8))

    def balance(x):
        m = (x + 1).mean(axis=(0, 1))
        return m / m.mean()

    # The cast shifts the channel balance by up to 40 %; after normalisation both
    # photos have (almost) the same balance. Overall brightness may differ.
    assert np.abs(balance(preprocess(photo(), SIZE)) - balance(preprocess(cast, SIZE))).max() < 0.02
