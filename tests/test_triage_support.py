"""Helpers shared by the triage tests (no tests of its own): test photos made with Pillow, good and bad."""

from __future__ import annotations

import io
import random
import uuid
from dataclasses import dataclass

from PIL import Image

# Degrees as EXIF GPS rationals: 51°30'26" N, 0°7'39" W.
GPS_IFD = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}
GPS_TAG = 0x8825
ORIENTATION_TAG = 0x0112
# One irregular colour for weeks: checklist score 2 (the benchmarks' cases too).
SYMPTOMS = {
    "size_changed": False,
    "shape_irregular": False,
    "colour_irregular": True,
    "diameter_7mm": False,
    "inflamed": False,
    "oozing": False,
    "sensation_changed": False,
    "duration": "weeks",
}


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


def gamma_profile(gamma: float = 2.2) -> bytes:
    """An sRGB-like ICC profile whose tone curves are a plain power law, as some cameras embed: converting
    from it to sRGB changes the pixels (an exact sRGB profile would leave them as they are)."""
    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    for i in range(int.from_bytes(profile[128:132], "big")):  # the tag table
        entry = 132 + 12 * i
        signature, offset = profile[entry : entry + 4], int.from_bytes(profile[entry + 4 : entry + 8], "big")
        if signature in (b"rTRC", b"gTRC", b"bTRC") and profile[offset : offset + 4] == b"para":
            # A parametric curve of function type 0 (y = x^g), g as s15Fixed16 right after the type.
            profile[offset + 8 : offset + 10] = bytes(2)
            profile[offset + 12 : offset + 16] = round(gamma * 65536).to_bytes(4, "big")
    profile[84:100] = bytes(16)  # the profile ID, an MD5 of the rest, no longer matches: none
    return bytes(profile)


def animated(fmt: str) -> bytes:
    frames = [lesion(300, 300, seed) for seed in range(3)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def noise_png(width: int, height: int) -> bytes:
    """A photo that does not compress: its PNG is about 3 bytes a pixel."""
    return encode(
        Image.frombytes("RGB", (width, height), random.Random(width * height).randbytes(width * height * 3)), "PNG"
    )


def decompression_bomb_png(side: int = 20_000) -> bytes:
    """A tiny file that claims side x side pixels (a 1-bit image compresses to almost nothing)."""
    return encode(Image.new("1", (side, side)), "PNG")


# ---- people and consultations, through the real auth and chat code -------------------------------

PASSWORD = "correct horse battery staple 42"


@dataclass
class Account:
    user_id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def account(client, role: str = "patient") -> Account:
    """A signed-in user; a doctor is approved by the admin path first."""
    from auth import AUTH_SERVICE
    from auth.audit import AuditContext

    email = f"{role}-{uuid.uuid4().hex[:10]}@example.org"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": f"Test {role}", "role": role}
    )
    assert response.status == 201, await response.text()
    user_id = uuid.UUID((await response.json())["user"]["id"])
    if role == "doctor":
        await client.app[AUTH_SERVICE].approve_doctor(user_id, ctx=AuditContext(None, None, "test"))
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return Account(user_id, (await response.json())["access_token"])


async def consultation(pool, patient: Account, body_site: str = "back") -> uuid.UUID:
    from chat.store import consultations
    from chat.store.context import SYSTEM

    async with pool.acquire() as conn:
        row = await consultations.create_consultation_txn(
            conn,
            patient_id=patient.user_id,
            description="A mole that changed colour",
            body_site=body_site,
            symptoms=SYMPTOMS,
            max_open=3,
            ctx=SYSTEM,
        )
    return row["id"]


async def assign(pool, consultation_id: uuid.UUID, doctor_id: uuid.UUID) -> None:
    from chat.store import doctors, pairing
    from chat.store.context import SYSTEM

    async with pool.acquire() as conn:
        await doctors.ensure_doctor(conn, doctor_id, 3)
        await pairing.take_case_txn(conn, doctor_id=doctor_id, consultation_id=consultation_id, ctx=SYSTEM)


async def score_consultation(
    conn,
    consultation_id: uuid.UUID,
    *,
    band: str,
    p_malignant: float,
    trusted: bool,
    model_version: str | None = None,
) -> None:
    """What the worker does for one photo, without the model: the photo stored and scored through triage's own
    store (the score's one home), with chat's hook (the one web.app lends triage) in the same transaction. Each
    call scores a new photo under a fresh model version, so that photo decides. Trusted: dermoscopic, no quality
    problem, in range."""
    from chat.queue import apply_triage_result
    from triage import bands
    from triage.images import NormalisedPhoto
    from triage.photo_gate import QualityReport
    from triage.store import photos as photo_store
    from triage.store import scores as score_store

    photo = NormalisedPhoto(
        image=b"\xff\xd8\xff",
        thumbnail=b"\xff\xd8\xff",
        sha256=uuid.uuid4().hex,
        width=1,
        height=1,
        source_format="jpeg",
        warnings=(),
    )
    [stored] = await photo_store.add_photos_txn(
        conn, consultation_id, "back", "dermoscopic", "dermoscopic", [(photo, QualityReport({}, ()))], max_photos=1000
    )
    version = model_version or f"test-{uuid.uuid4().hex[:8]}"
    result = score_store.PhotoResult(
        stored.photo["id"],
        consultation_id,
        version,
        p_malignant,
        {"mel": p_malignant},
        "mel",
        band,
        ood_score=0.0,
        in_distribution=trusted,
    )
    await score_store.record_results_txn(conn, [result], bands.BANDS, apply_triage_result)
