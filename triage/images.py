"""Checking an uploaded photo and normalising it: sniffed type, size and pixel caps, one frame, EXIF
orientation applied, every metadata block dropped, sRGB RGB, re-encoded as JPEG with a thumbnail.

Every rejection is a DomainError; nothing here touches storage, so a rejected photo leaves no trace.
"""

from __future__ import annotations

import functools
import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps

from jax_models.preprocess import ALPHA_BACKGROUND, to_rgb
from store.errors import DomainError, unprocessable

try:
    # HEIC/HEIF from phones, when pillow-heif is installed; without it HEIC is an unsupported type.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:
    HEIF_SUPPORTED = False

STORED_MEDIA_TYPE = "image/jpeg"
STORED_JPEG_QUALITY = 92
THUMBNAIL_SIDE = 256
THUMBNAIL_JPEG_QUALITY = 80
# The teledermatology guideline for clinical photos; below it we accept with a warning.
GUIDELINE_SIZE = (800, 600)
# libjpeg writes no side longer than this; a longer one could be decoded but never stored.
MAX_SIDE = 65_500
# Bytes per decoded pixel of the modes that hold more than RGB's three: the pixel cap is a cap on
# decoded bytes, max_pixels RGB pixels' worth.
_BYTES_PER_PIXEL = {"RGBA": 4, "RGBX": 4, "CMYK": 4, "YCbCr": 3, "I": 4, "F": 4, "RGBa": 4, "LAB": 3, "HSV": 3}
# High-bit-depth greys are scaled to 8 bits this many rows at a time, so no full-size wide copy exists.
_STRIP_ROWS = 256
_HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_SRGB_PROFILE = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class NormalisedPhoto:
    image: bytes
    thumbnail: bytes
    sha256: str
    width: int
    height: int
    source_format: str
    warnings: tuple[str, ...]


def sniff_format(data: bytes) -> str | None:
    """The image format named by the file's first bytes (never by its name or declared type)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def _unsupported_type() -> DomainError:
    accepted = "JPEG, PNG, WebP" + (" or HEIC" if HEIF_SUPPORTED else "")
    return DomainError(415, "unsupported_image_type", f"The file is not a {accepted} image.")


def _corrupt(reason: str) -> DomainError:
    return unprocessable("corrupt_image", f"The image could not be read ({reason}); it may be truncated or damaged.")


def _open_checked(data: bytes, fmt: str, max_pixels: int, min_side: int) -> Image.Image:
    """Opens the header, applies the caps that need no decoding, then decodes the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(max_pixels) from None
    # Untrusted bytes can make a decoder fail in many ways; each one is the same typed rejection.
    except Exception as exc:  # noqa: BLE001
        raise _corrupt(type(exc).__name__) from None
    width, height = image.size
    if width * height * max(3, _BYTES_PER_PIXEL.get(image.mode, 3)) > max_pixels * 3:
        raise _too_many_pixels(max_pixels)
    if max(width, height) > MAX_SIDE:
        raise unprocessable(
            "image_side_too_long",
            f"The image is {width}x{height} pixels; no side may be longer than {MAX_SIDE}.",
            width=width,
            height=height,
            max_side=MAX_SIDE,
        )
    if min(width, height) < min_side:
        raise unprocessable(
            "image_too_small",
            f"The image is {width}x{height} pixels; each side must be at least {min_side}.",
            width=width,
            height=height,
            min_side=min_side,
        )
    if image.format == "MPO":
        # A phone's multi-picture JPEG: the first frame is the photo (the others are previews or depth
        # maps), and opening it reads that frame only.
        image.seek(0)
    elif getattr(image, "n_frames", 1) > 1 or getattr(image, "is_animated", False):
        raise unprocessable("animated_image", "Animated or multi-frame images are not accepted; send a single photo.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except Exception as exc:  # noqa: BLE001
        raise _corrupt(type(exc).__name__) from None
    return image


def _too_many_pixels(max_pixels: int) -> DomainError:
    return unprocessable(
        "image_too_many_pixels",
        f"The image has more than {max_pixels} pixels; send a smaller photo.",
        max_pixels=max_pixels,
    )


def _to_srgb_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels in sRGB holding no metadata. Other modes go through the classifier's own conversion,
    so that the stored photo is what the model sees: 16-bit and float images scaled (not clipped to
    white), transparency laid over neutral grey."""
    icc = image.info.get("icc_profile")
    if image.mode in _HIGH_BIT_DEPTH:
        image = _to_8bit_grey(image)
    elif image.mode in _WITH_ALPHA or (image.mode == "P" and "transparency" in image.info):
        image = _flatten_alpha(image)
    rgb = image if image.mode == "RGB" else to_rgb(image)
    transform = _to_srgb(icc) if icc and image.mode in ("RGB", "RGBA") else None
    if transform is not None:
        # Not in place, though the pixels are ours: measured on phone photos, the conversion itself got faster
        # but the next photo's decode slower by more (the allocator then maps fresh pages for it).
        rgb = transform.apply(rgb)
    # The JPEG encoder writes only the metadata it is handed; dropping what the image holds makes
    # sure none (EXIF, GPS, XMP, ICC, comments) can be handed on by accident.
    rgb.info = {}
    return rgb


@functools.lru_cache(maxsize=16)
def _to_srgb(icc: bytes) -> ImageCms.ImageCmsTransform | None:
    """The conversion from an embedded colour profile to sRGB, built once per distinct profile (the phones of
    one make embed the same one; building it costs about as much as decoding a browser upload). None for a
    broken profile: its pixels are then kept as sRGB rather than a usable photo refused. A transform is
    shared by the intake threads; Little CMS copies its pixel cache per call, so that is safe."""
    try:
        return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB_PROFILE, "RGB", "RGB")
    except (ImageCms.PyCMSError, OSError):
        return None


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit grey image scaled (not clipped) to 8 bits as the classifier's to_rgb scales it,
    strip by strip in float32: no full-size float copy (a float64 one of a large image is gigabytes)."""
    low, high = image.getextrema()
    if image.mode.startswith("I;16"):
        top = 65535.0
    elif image.mode == "F":
        top = max(float(high), 1.0)
    else:
        top = 65535.0 if high > 255 else 255.0
    scale = np.float32(255.0 / top)
    out = np.empty((image.height, image.width), dtype=np.uint8)
    for y in range(0, image.height, _STRIP_ROWS):
        strip = np.asarray(image.crop((0, y, image.width, min(y + _STRIP_ROWS, image.height))), dtype=np.float32)
        np.clip(strip * scale + np.float32(0.5), 0, 255, out=strip)
        out[y : y + strip.shape[0]] = strip
    return Image.fromarray(out)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Transparency laid over the classifier's neutral grey, as to_rgb does, but pasted through the alpha
    band into one RGB image rather than composited through two more full-size RGBA ones."""
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
    flat.paste(rgba, mask=rgba)
    return flat


def _thumbnail(image: Image.Image) -> Image.Image:
    scale = THUMBNAIL_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: a cheap integer reduction first, then a filtered resize of the small image.
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    try:
        # No optimize=True: on a textured photo it triples the encoding time to save about 5% of the bytes.
        image.save(out, format="JPEG", quality=quality)
    except (OSError, ValueError) as exc:
        # The checks above leave nothing libjpeg should refuse; if it does, the photo is refused, typed.
        raise unprocessable(
            "image_not_storable", f"The photo could not be re-encoded ({type(exc).__name__})."
        ) from None
    return out.getvalue()


def normalise_photo(data: bytes, *, max_pixels: int, min_side: int) -> NormalisedPhoto:
    """Checks one uploaded photo and returns it re-encoded without metadata, or raises a DomainError."""
    if not data:
        raise unprocessable("empty_file", "The photo is empty.")
    fmt = sniff_format(data)
    if fmt is None or (fmt == "HEIF" and not HEIF_SUPPORTED):
        raise _unsupported_type()
    image = _open_checked(data, fmt, max_pixels, min_side)
    try:
        ImageOps.exif_transpose(image, in_place=True)
        rgb = _to_srgb_rgb(image)
    except Exception as exc:  # noqa: BLE001 - a malformed EXIF block or an odd mode in bytes we do not control
        raise _corrupt(type(exc).__name__) from None
    stored = _encode_jpeg(rgb, STORED_JPEG_QUALITY)
    width, height = rgb.size
    notes = []
    if max(width, height) < GUIDELINE_SIZE[0] or min(width, height) < GUIDELINE_SIZE[1]:
        notes.append(
            f"The photo is {width}x{height} pixels, below the 800x600 recommended for clinical "
            "photos; a sharper, closer photo helps the doctor."
        )
    return NormalisedPhoto(
        image=stored,
        thumbnail=_encode_jpeg(_thumbnail(rgb), THUMBNAIL_JPEG_QUALITY),
        sha256=hashlib.sha256(stored).hexdigest(),
        width=width,
        height=height,
        source_format=fmt,
        warnings=tuple(notes),
    )


def decode_for_model(data: bytes, min_side: int) -> Image.Image:
    """A stored photo as RGB of at least `min_side` pixels a side; JPEG's draft mode decodes it at a
    reduced scale, skipping work on pixels that the resize to the model's input would discard anyway."""
    image = Image.open(io.BytesIO(data), formats=["JPEG"])
    image.draft("RGB", (min_side, min_side))
    return image.convert("RGB")
