"""Doctors' capacity, availability and presence (`chat_doctors`)."""

from __future__ import annotations

import uuid

import asyncpg

from auth.audit import AuditContext

# A doctor's presence row; $1 is the grace period in seconds.
_DOCTOR_COLUMNS = """d.doctor_id, d.capacity, d.availability,
    coalesce(d.last_seen > now() - make_interval(secs => $1), false) AS online,
    (SELECT count(*) FROM consultations a WHERE a.doctor_id = d.doctor_id AND a.state = 'active') AS active"""


async def ensure_doctor(conn: asyncpg.Connection, doctor_id: uuid.UUID, default_capacity: int) -> None:
    await conn.execute(
        "INSERT INTO chat_doctors (doctor_id, capacity) VALUES ($1, $2) ON CONFLICT (doctor_id) DO NOTHING",
        doctor_id,
        default_capacity,
    )


async def get_doctor(conn: asyncpg.Connection, doctor_id: uuid.UUID, grace_s: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_DOCTOR_COLUMNS} FROM chat_doctors d WHERE d.doctor_id = $2", float(grace_s), doctor_id
    )


async def list_doctor_presence(conn: asyncpg.Connection, grace_s: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_DOCTOR_COLUMNS} FROM chat_doctors d ORDER BY d.doctor_id", float(grace_s))


async def set_availability_txn(
    conn: asyncpg.Connection, doctor_id: uuid.UUID, availability: str, ctx: AuditContext
) -> None:
    async with conn.transaction():
        await conn.execute(
            "UPDATE chat_doctors SET availability = $2, updated_at = now() WHERE doctor_id = $1",
            doctor_id,
            availability,
        )
        await ctx.record(conn, "doctor.availability", "doctor", doctor_id, {"availability": availability})


async def set_capacity_txn(conn: asyncpg.Connection, doctor_id: uuid.UUID, capacity: int, ctx: AuditContext) -> None:
    async with conn.transaction():
        await conn.execute(
            "UPDATE chat_doctors SET capacity = $2, updated_at = now() WHERE doctor_id = $1", doctor_id, capacity
        )
        await ctx.record(conn, "doctor.capacity", "doctor", doctor_id, {"capacity": capacity})


async def mark_doctors_seen(conn: asyncpg.Connection, doctor_ids: list[uuid.UUID]) -> None:
    await conn.execute("UPDATE chat_doctors SET last_seen = now() WHERE doctor_id = ANY($1::uuid[])", doctor_ids)


async def count_online_available(conn: asyncpg.Connection, grace_s: int) -> int:
    return await conn.fetchval(
        """SELECT count(*) FROM chat_doctors
           WHERE availability = 'available' AND last_seen > now() - make_interval(secs => $1)""",
        float(grace_s),
    )
