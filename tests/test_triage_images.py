"""The photo validator and normaliser on its own: every rejection typed, metadata gone, orientation applied."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from store.errors import DomainError
from tests import test_triage_support as ti
from triage.images import (
    HEIF_SUPPORTED,
    STORED_JPEG_QUALITY,
    normalise_photo,
    sniff_format,
)

LIMITS = {"max_pixels": 64_000_000, "min_side": 128}


def rejection(data: bytes, **limits) -> DomainError:
    with pytest.raises(DomainError) as caught:
        normalise_photo(data, **{**LIMITS, **limits})
    return caught.value


@pytest.mark.parametrize("fmt, options", [("JPEG", {"quality": 90}), ("PNG", {}), ("WEBP", {"quality": 90})])
def test_accepts_each_format_and_reencodes_as_jpeg(fmt, options):
    photo = normalise_photo(ti.encode(ti.lesion(), fmt, **options), **LIMITS)
    assert photo.source_format == fmt
    assert (photo.width, photo.height) == (900, 700)
    stored = Image.open(io.BytesIO(photo.image))
    assert stored.format == "JPEG" and stored.mode == "RGB" and stored.size == (900, 700)
    thumb = Image.open(io.BytesIO(photo.thumbnail))
    assert max(thumb.size) == 256
    assert photo.warnings == ()


def test_type_is_sniffed_from_bytes_not_trusted():
    assert sniff_format(ti.jpeg()) == "JPEG"
    assert sniff_format(b"GIF89a" + b"\0" * 100) is None
    error = rejection(ti.encode(ti.lesion(), "GIF"))
    assert (error.status, error.code) == (415, "unsupported_image_type")
    error = rejection(b"%PDF-1.7\n" + b"x" * 1000)
    assert (error.status, error.code) == (415, "unsupported_image_type")


def test_empty_file():
    error = rejection(b"")
    assert (error.status, error.code) == (422, "empty_file")


def test_truncated_jpeg_and_png_are_corrupt():
    for data in (ti.jpeg(), ti.encode(ti.lesion(), "PNG")):
        error = rejection(data[: len(data) // 2])
        assert (error.status, error.code) == (422, "corrupt_image")


def test_garbage_after_valid_header_is_corrupt():
    data = ti.jpeg()
    error = rejection(data[:200] + bytes(range(256)) * 20)
    assert (error.status, error.code) == (422, "corrupt_image")


def test_pixel_cap_rejects_a_decompression_bomb_before_decoding():
    bomb = ti.decompression_bomb_png(20_000)  # 400 megapixels in a few kilobytes
    assert len(bomb) < 200_000
    started = time.perf_counter()
    error = rejection(bomb)
    assert (error.status, error.code) == (422, "image_too_many_pixels")
    assert time.perf_counter() - started < 1.0
    error = rejection(ti.jpeg(1000, 1000), max_pixels=999_999)
    assert error.code == "image_too_many_pixels"


def test_minimum_resolution_and_guideline_warning():
    error = rejection(ti.jpeg(200, 100))
    assert (error.status, error.code) == (422, "image_too_small")
    dermoscopy_crop = normalise_photo(ti.jpeg(171, 128), **LIMITS)
    assert (dermoscopy_crop.width, dermoscopy_crop.height) == (171, 128)
    assert dermoscopy_crop.warnings and "800x600" in dermoscopy_crop.warnings[0]
    portrait = normalise_photo(ti.jpeg(600, 800), **LIMITS)
    assert portrait.warnings == ()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_are_refused(fmt):
    error = rejection(ti.animated(fmt))
    assert (error.status, error.code) == (422, "animated_image")


def test_exif_orientation_applied_and_all_metadata_stripped():
    original = ti.jpeg_with_gps_and_orientation(orientation=6)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ti.GPS_TAG)
    photo = normalise_photo(original, **LIMITS)
    # Orientation 6 means "rotate 90° clockwise to view": 900x600 becomes 600x900.
    assert (photo.width, photo.height) == (600, 900)
    stored = Image.open(io.BytesIO(photo.image))
    assert not stored.getexif() and not stored.getexif().get_ifd(ti.GPS_TAG)
    assert "exif" not in stored.info and "icc_profile" not in stored.info
    assert b"Exif" not in photo.image[:4096] and b"PhoneMaker" not in photo.image
    assert b"Exif" not in photo.thumbnail[:4096]


def test_an_embedded_colour_profile_is_converted_to_srgb_as_little_cms_converts_it():
    """Intake builds one conversion per profile and shares it between threads: the stored photo is still
    exactly Pillow's plain profile-to-profile conversion, re-encoded."""
    profile = ti.gamma_profile(2.2)
    upload = ti.jpeg(icc_profile=profile)
    decoded = Image.open(io.BytesIO(upload))
    expected = ImageCms.profileToProfile(
        decoded, ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    assert expected.tobytes() != decoded.convert("RGB").tobytes(), "the profile is not sRGB: pixels change"
    with ThreadPoolExecutor(4) as pool:
        stored = {photo.image for photo in pool.map(lambda _: normalise_photo(upload, **LIMITS), range(8))}
    assert stored == {ti.encode(expected, "JPEG", quality=STORED_JPEG_QUALITY)}
    broken = normalise_photo(ti.jpeg(icc_profile=b"not a profile"), **LIMITS)
    assert broken.image == normalise_photo(ti.jpeg(), **LIMITS).image, "a broken profile: pixels kept as sRGB"


def test_transparency_and_palette_become_rgb():
    rgba = ti.lesion().convert("RGBA")
    rgba.putalpha(128)
    photo = normalise_photo(ti.encode(rgba, "PNG"), **LIMITS)
    assert Image.open(io.BytesIO(photo.image)).mode == "RGB"
    palette = normalise_photo(ti.encode(ti.lesion().convert("P"), "PNG"), **LIMITS)
    assert palette.source_format == "PNG"


def test_sixteen_bit_photo_is_scaled_not_clipped_to_white():
    ramp = Image.frombytes("I;16", (300, 300), bytes(range(256)) * (300 * 300 * 2 // 256) + bytes(300 * 300 * 2 % 256))
    photo = normalise_photo(ti.encode(ramp, "PNG"), **LIMITS)
    stored = Image.open(io.BytesIO(photo.image)).convert("L")
    low, high = stored.getextrema()
    assert high - low > 100, "the stored photo keeps the ramp's contrast"


def test_same_pixels_with_different_metadata_have_one_hash():
    image = ti.lesion()
    plain = normalise_photo(ti.encode(image, "PNG"), **LIMITS)
    with_text = normalise_photo(ti.encode(image, "PNG", pnginfo=_png_text("Author", "someone")), **LIMITS)
    assert plain.sha256 == with_text.sha256
    assert plain.sha256 != normalise_photo(ti.encode(ti.lesion(seed=5), "PNG"), **LIMITS).sha256


def _png_text(key: str, value: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info


@pytest.mark.skipif(not HEIF_SUPPORTED, reason="pillow-heif is not installed")
def test_heic_from_a_phone_is_accepted():
    photo = normalise_photo(ti.encode(ti.lesion(), "HEIF", quality=80), **LIMITS)
    assert photo.source_format == "HEIF"
    assert Image.open(io.BytesIO(photo.image)).format == "JPEG"


SEEDS = [
    ti.jpeg(300, 200),
    ti.encode(ti.lesion(300, 200), "PNG"),
    ti.encode(ti.lesion(300, 200), "WEBP"),
    ti.jpeg_with_gps_and_orientation(),
]


@st.composite
def mutated_images(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 12))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    st.one_of(
        mutated_images(),
        st.binary(max_size=4096),
        st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBP"]).flatmap(
            lambda magic: st.binary(max_size=2048).map(lambda tail: magic + tail)
        ),
    )
)
def test_fuzz_validator_only_ever_rejects_with_a_typed_error(data):
    started = time.perf_counter()
    try:
        photo = normalise_photo(data, **LIMITS)
    except DomainError as error:
        assert 400 <= error.status < 500 and error.code
    else:
        assert Image.open(io.BytesIO(photo.image)).format == "JPEG"
    assert time.perf_counter() - started < 2.0
