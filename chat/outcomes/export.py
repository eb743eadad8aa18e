"""`skindoc outcomes export`: the confirmed cases' photos and labels in the training data's folder layout
(labels.csv + images/<image_id>.jpg, as jax_models.data reads), under pseudonyms.

Pseudonyms are keyed hashes with a key made for this export and then forgotten: the folder links no photo to a
patient or consultation, and two exports cannot be joined on their ids. The audit log keeps which cases each
export read (one row per case, with the export's id), so the clinic can still answer "who saw what".
Each case's split (val: calibration; test: held out) follows from its consultation id, so it is the same in every
export and a case never moves from the held-out half into the calibration half.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from auth.audit import AuditContext
from chat.outcomes import store
from triage.store import photos as photo_store

LABEL_COLUMNS = ("image_id", "lesion_id", "dx", "malignant", "age", "sex", "site", "split")


@dataclass(frozen=True)
class ExportSummary:
    export_id: str
    folder: Path
    cases: int
    photos: int
    malignant_cases: int
    splits: dict[str, int]


def held_out(consultation_id: uuid.UUID, test_fraction: float) -> bool:
    bucket = int.from_bytes(hashlib.sha256(consultation_id.bytes).digest()[:4], "big") / 2**32
    return bucket < test_fraction


class Pseudonyms:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def of(self, kind: str, value: uuid.UUID) -> str:
        return f"SKD_{hmac.new(self._key, kind.encode() + value.bytes, hashlib.sha256).hexdigest()[:20]}"


async def export_confirmed_cases(
    pool: asyncpg.Pool, folder: Path, *, test_fraction: float, ctx: AuditContext
) -> ExportSummary:
    """Writes the export into `folder` (which must not exist yet); the audit rows commit before any file."""
    if folder.exists():
        raise FileExistsError(f"{folder} already exists: an export goes into a new folder")
    export_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        cases = await store.confirmed_cases_for_export(conn)
        photos = {
            case["consultation_id"]: await photo_store.list_photos(conn, case["consultation_id"]) for case in cases
        }
        cases = [case for case in cases if photos[case["consultation_id"]]]
        await store.record_export(
            conn, ctx, export_id, {c["consultation_id"]: len(photos[c["consultation_id"]]) for c in cases}
        )
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "images").mkdir(parents=True)
    rows = await _write_images(pool, partial, cases, photos, test_fraction)
    with open(partial / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, folder)  # a reader never sees half an export
    splits = {split: sum(r["split"] == split for r in rows) for split in ("val", "test")}
    return ExportSummary(export_id, folder, len(cases), len(rows), sum(c["malignant"] for c in cases), splits)


async def _write_images(
    pool: asyncpg.Pool, folder: Path, cases: list[asyncpg.Record], photos: dict, test_fraction: float
) -> list[dict]:
    names = Pseudonyms()
    rows = []
    for case in cases:
        lesion_id = names.of("lesion", case["consultation_id"])
        split = "test" if held_out(case["consultation_id"], test_fraction) else "val"
        async with pool.acquire() as conn:
            images = await photo_store.load_photo_images(conn, [p["id"] for p in photos[case["consultation_id"]]])
        for image in images:
            image_id = names.of("image", image["id"])
            (folder / "images" / f"{image_id}.jpg").write_bytes(image["image"])
            rows.append(
                {
                    "image_id": image_id,
                    "lesion_id": lesion_id,
                    "dx": case["diagnosis"],
                    "malignant": int(case["malignant"]),
                    "age": "",
                    "sex": "",
                    "site": case["body_site"],
                    "split": split,
                }
            )
    return rows
