"""How long the triage performance view takes to compute, against the number of confirmed cases.

Seeds a scratch database (migrated, then dropped) with N resolved cases, each with two photos (one tagged
dermoscopic), scored by two model versions and confirmed by histopathology, then calls the outcomes
service's `performance` (the SQL, the figures for 2 versions x 3 photo groupings with 1000 bootstrap
resamples each, and the audit row) several times and prints the timings.

    .venv/bin/python bench/outcomes_performance.py --cases 500 2000 10000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auth.audit import AuditContext
from auth.principal import Principal
from bench.cluster import DEFAULT_PG_ADMIN_URL
from bench.tables import percentile, print_table
from chat.outcomes.config import OutcomesConfig
from chat.outcomes.service import AlertMonitor, OutcomesService
from store.connections import Stores
from tests.live_server import scratch_database
from web.app import all_migrations

VERSIONS = ("bench00000000001", "bench00000000002")


async def seed(pool, cases: int) -> uuid.UUID:
    """One doctor and patient; `cases` confirmed cases in a handful of set-based statements."""
    async with pool.acquire() as conn, conn.transaction():
        doctor, patient = [
            await conn.fetchval(
                "INSERT INTO users (email, display_name, role, status) VALUES ($1, 'Bench', $2, 'active') RETURNING id",
                f"{role}-{uuid.uuid4().hex[:8]}@example.org",
                role,
            )
            for role in ("doctor", "patient")
        ]
        await conn.execute(
            """CREATE TEMP TABLE seeded ON COMMIT DROP AS
               SELECT gen_random_uuid() AS id, i, random() < 0.2 AS malignant FROM generate_series(1, $1) i""",
            cases,
        )
        await conn.execute(
            """INSERT INTO consultations (id, patient_id, doctor_id, state, description, body_site, symptoms,
                                          urgency, checklist_score, checklist_band, queued_at, assigned_at,
                                          closed_at, outcome)
               SELECT id, $1, $2, 'resolved', 'bench', 'back', '{}', 'soon', 2, 'soon',
                      now() - interval '2 hours', now() - interval '1 hour', now() + make_interval(secs => i),
                      'monitor' FROM seeded""",
            patient,
            doctor,
        )
        await conn.execute(
            """INSERT INTO triage_photos (id, consultation_id, body_site, tag, sha256, source_format, width,
                                          height, image, thumbnail, status)
               SELECT gen_random_uuid(), s.id, 'back', t.tag, md5(s.id::text || t.n), 'jpeg', 10, 10, '', '',
                      'scored'
                 FROM seeded s CROSS JOIN (VALUES (1, 'dermoscopic'), (2, NULL)) AS t(n, tag)"""
        )
        for version in VERSIONS:
            await conn.execute(
                """INSERT INTO triage_photo_scores (photo_id, model_version, p_malignant, probabilities, dx,
                                                    urgency, batch_size)
                   SELECT p.id, $1, x.p, '{}', 'nv',
                          CASE WHEN x.p >= 0.3 THEN 'urgent' WHEN x.p >= 0.1 THEN 'soon' ELSE 'routine' END, 1
                     FROM triage_photos p JOIN seeded s ON s.id = p.consultation_id
                     CROSS JOIN LATERAL (SELECT least(1, greatest(0, random() * 0.6
                                                 + CASE WHEN s.malignant THEN 0.3 ELSE 0 END)) AS p) x""",
                version,
            )
        # The live score's one home: each case's highest-scoring photo under the first version.
        await conn.execute(
            """INSERT INTO triage_consultation_scores (consultation_id, photo_id, model_version, urgency, p_malignant,
                                                       scored_photos)
               SELECT DISTINCT ON (p.consultation_id) p.consultation_id, p.id, s.model_version, s.urgency,
                      s.p_malignant, 2
                 FROM triage_photos p JOIN seeded d ON d.id = p.consultation_id
                 JOIN triage_photo_scores s ON s.photo_id = p.id AND s.model_version = $1
                ORDER BY p.consultation_id, s.p_malignant DESC""",
            VERSIONS[0],
        )
        await conn.execute(
            """INSERT INTO histopathology_results (consultation_id, diagnosis, malignant, reported_on, entered_by,
                                                   entered_role)
               SELECT id, CASE WHEN malignant THEN 'mel' ELSE 'nv' END, malignant, current_date, $1, 'doctor'
                 FROM seeded""",
            doctor,
        )
    return doctor


async def measure(pg_admin_url: str, cases: int, repeats: int) -> list[object]:
    async with scratch_database(pg_admin_url, "skindoc_bench_outcomes") as database_url:
        stores = Stores()
        await stores.open(database_url, "redis://127.0.0.1:6379/5", all_migrations(), pool_size=2)
        try:
            doctor = await seed(stores.pool, cases)
            service = OutcomesService(stores, OutcomesConfig(), AlertMonitor(None))
            principal = Principal(doctor, "admin", True, "bench", None)
            ctx = AuditContext(principal, None, "bench")
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                body = await service.performance(principal, ctx)
                timings.append((time.perf_counter() - started) * 1000)
            assert body["confirmed_cases"] == cases
        finally:
            await stores.close()
    return [cases, repeats, percentile(timings, 50), max(timings)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN_URL)
    args = parser.parse_args()
    rows = [await measure(args.pg_admin_url, n, args.repeats) for n in args.cases]
    print_table(
        "performance view: 2 model versions x (all, dermoscopic, camera), 1000 bootstrap resamples",
        ["confirmed cases", "runs", "median ms", "max ms"],
        rows,
    )


if __name__ == "__main__":
    asyncio.run(main())
