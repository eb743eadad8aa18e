"""Chat messages: the group-committed insert with sequence numbers, history pages and read marks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from auth import audit
from auth.audit import AuditContext
from auth.principal import Principal


@dataclass
class PendingMessage:
    consultation_id: uuid.UUID
    sender: Principal
    client_msg_id: str
    body: str
    ctx: AuditContext


@dataclass
class StoredMessage:
    row: asyncpg.Record | None  # None: the sender may not post in this consultation now
    duplicate: bool


async def insert_messages(conn: asyncpg.Connection, batch: list[PendingMessage]) -> list[StoredMessage]:
    """Stores a batch of messages in one transaction (group commit), each with the next sequence number.

    One statement, `chat_store_messages` (chat migration 0006), whatever the batch's size:
    it locks the consultations in id order, stores each message and keeps the batch's
    arrival order within each consultation. A client id sent twice (in this batch or
    before) is stored once. Each message stored now gets its audit row through auth's
    one insert, in the same transaction, in arrival order.
    """
    first_of: dict[tuple, int] = {}
    for i, m in enumerate(batch):
        first_of.setdefault((m.consultation_id, m.sender.user_id, m.client_msg_id), i)
    unique = list(first_of.values())  # in arrival order
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT * FROM chat_store_messages($1, $2, $3, $4, $5)",
            [batch[i].consultation_id for i in unique],
            [batch[i].sender.user_id for i in unique],
            [batch[i].sender.role for i in unique],
            [batch[i].client_msg_id for i in unique],
            [batch[i].body for i in unique],
        )
        await audit.record_many(
            conn,
            [
                _sent_entry(batch[unique[r["n"] - 1]], r)
                for r in sorted(rows, key=lambda r: r["n"])
                if r["outcome"] == "stored"
            ],
        )
    # The statement numbers its input from 1; a message it refused has no row.
    by_first = {unique[r["n"] - 1]: StoredMessage(r, duplicate=r["outcome"] == "duplicate") for r in rows}
    answers = []
    for i, m in enumerate(batch):
        first = first_of[(m.consultation_id, m.sender.user_id, m.client_msg_id)]
        result = by_first.get(first, StoredMessage(None, duplicate=False))
        # A repeat of a client id within one batch gets the first one's row, marked as a duplicate.
        answers.append(result if i == first or result.row is None else StoredMessage(result.row, duplicate=True))
    return answers


def _sent_entry(message: PendingMessage, row: asyncpg.Record) -> audit.AuditEntry:
    # The sender is the actor, from where their connection or request came; the length counts code points.
    return message.ctx.as_actor(message.sender).entry(
        "chat.message.send", "consultation", row["consultation_id"], {"seq": row["seq"], "chars": len(row["body"])}
    )


async def messages_after(
    conn: asyncpg.Connection, consultation_id: uuid.UUID, after_seq: int, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM consultation_messages WHERE consultation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        consultation_id,
        after_seq,
        limit,
    )


async def messages_before(
    conn: asyncpg.Connection, consultation_id: uuid.UUID, before_seq: int, limit: int
) -> list[asyncpg.Record]:
    rows = await conn.fetch(
        """SELECT * FROM consultation_messages WHERE consultation_id = $1 AND seq < $2
           ORDER BY seq DESC LIMIT $3""",
        consultation_id,
        before_seq,
        limit,
    )
    return list(reversed(rows))


async def mark_read(conn: asyncpg.Connection, consultation_id: uuid.UUID, user_id: uuid.UUID, seq: int) -> int:
    return await conn.fetchval(
        """INSERT INTO consultation_reads (consultation_id, user_id, read_seq) VALUES ($1, $2, $3)
           ON CONFLICT (consultation_id, user_id) DO UPDATE
           SET read_seq = GREATEST(consultation_reads.read_seq, EXCLUDED.read_seq), updated_at = now()
           RETURNING read_seq""",
        consultation_id,
        user_id,
        seq,
    )
