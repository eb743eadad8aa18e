"""Migrating consultations opened before the checklist and the photo gate (chat 0003, triage 0002)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg

from store.migrations import apply_migrations
from tests.test_auth_migrations import new_empty_database  # noqa: F401 - a fixture
from web.app import all_migrations

NEW = {("chat", 3), ("triage", 2)}


def _up_to_new(migration) -> bool:
    """Migrations up to NEW: the later ones (chat 0005 drops the score's copies) assume the schema NEW made."""
    newest = dict(NEW)
    return migration.domain not in newest or migration.version <= newest[migration.domain]


OLD_FLAGS = [
    # (old symptom flags, band the case held, scored?) -> checked below
    (
        {
            "changed_size": True,
            "changed_shape": False,
            "changed_colour": True,
            "bleeding": False,
            "itching": False,
            "duration": "months",
        },
        "routine",
        True,
    ),
    (
        {
            "changed_size": False,
            "changed_shape": False,
            "changed_colour": False,
            "bleeding": True,
            "itching": True,
            "duration": "weeks",
        },
        "urgent",
        True,
    ),
    (
        {
            "changed_size": False,
            "changed_shape": True,
            "changed_colour": False,
            "bleeding": False,
            "itching": False,
            "duration": "days",
        },
        "routine",
        False,
    ),
]


async def _old_schema_with_cases(url: str) -> tuple[asyncpg.Connection, list]:
    conn = await asyncpg.connect(url)
    await apply_migrations(conn, [m for m in all_migrations() if _up_to_new(m) and (m.domain, m.version) not in NEW])
    patient = await conn.fetchval(
        "INSERT INTO users (email, display_name, role, status) "
        "VALUES ('old@example.org', 'Old', 'patient', 'active') RETURNING id"
    )
    ids = []
    for flags, band, scored in OLD_FLAGS:
        ids.append(
            await conn.fetchval(
                """INSERT INTO consultations (patient_id, description, body_site, symptoms, urgency, p_malignant,
                                          model_version, scored_at)
               VALUES ($1, 'old case', 'back', $2::jsonb, $3, $4, $5, $6) RETURNING id""",
                patient,
                json.dumps(flags),
                band,
                0.5 if scored else None,
                "old" if scored else None,
                datetime.now(UTC) if scored else None,
            )
        )
    await conn.execute(
        """INSERT INTO triage_photos (consultation_id, body_site, tag, sha256, source_format, width, height, image,
                                      thumbnail)
           VALUES ($1, 'back', 'dermoscopic', 'a', 'JPEG', 1, 1, '', ''),
                  ($1, 'back', NULL, 'b', 'JPEG', 1, 1, '', '')""",
        ids[0],
    )
    return conn, ids


async def test_old_consultations_map_onto_the_checklist_and_keep_their_band(new_empty_database):  # noqa: F811
    conn, ids = await _old_schema_with_cases(await new_empty_database())
    try:
        applied = await apply_migrations(conn, [m for m in all_migrations() if _up_to_new(m)])
        assert {(m.domain, m.version) for m in applied} == NEW
        rows = {r["id"]: r for r in await conn.fetch("SELECT * FROM consultations")}
        first, second, third = (rows[i] for i in ids)
        symptoms = json.loads(first["symptoms"])
        assert symptoms == {
            "size_changed": True,
            "shape_irregular": False,
            "colour_irregular": True,
            "diameter_7mm": None,
            "inflamed": None,
            "oozing": False,
            "sensation_changed": False,
            "duration": "months",
            "legacy_flags": OLD_FLAGS[0][0],
        }
        # Size and colour: 4 points, urgent; the case was routine, so it moves up.
        assert (first["checklist_score"], first["checklist_band"], first["urgency"]) == (4, "urgent", "urgent")
        assert first["image_band"] == "routine" and first["score_trusted"] is False
        # Bleeding (oozing) and itching (sensation): 2 points, soon; the case held urgent and keeps it.
        assert (second["checklist_score"], second["checklist_band"], second["urgency"]) == (2, "soon", "urgent")
        # Changed shape: 2 points; never scored, so no image band.
        assert (third["checklist_score"], third["checklist_band"], third["urgency"], third["image_band"]) == (
            2,
            "soon",
            "soon",
            None,
        )
        kinds = {
            r["tag"]: (r["kind"], r["quality"])
            for r in await conn.fetch("SELECT tag, kind, quality FROM triage_photos")
        }
        assert kinds == {"dermoscopic": ("dermoscopic", None), None: ("unknown", None)}
    finally:
        await conn.close()
