"""The audit chain's integrity: signed checkpoints, and the check `skindoc audit verify` runs.

The database links each audit row to the one before with a SHA-256 digest
(auth/migrations/0001): that finds a row changed on its own, but whoever can write
the table can recompute the digests too. So at intervals a server signs the chain's
head — checkpoint n names the last row and its hash, with an HMAC keyed by a secret
the database never holds, over checkpoint n-1's HMAC as well. Rewriting any row up
to a checkpoint changes the head that checkpoint names; signing a new one needs the
key. Verification recomputes every digest here, in Python, from the rows' canonical
text, and checks every checkpoint. The README's security section states the threat
model.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from auth.config import AuthConfig
from auth.keyfiles import create_or_read
from store.outages import repeat_every

log = logging.getLogger(__name__)

KEY_FILE_NAME = "audit_checkpoint_key"
MIN_KEY_BYTES = 32
# Serialises checkpoint writers across nodes: "SKDP".
CHECKPOINT_LOCK_ID = 0x534B4450

# The row's text exactly as the chain trigger digests it (audit_log_digest), built from pg_catalog's
# own functions so that no function in the application's schema takes part in checking it.
_CANONICAL_ROW = """pg_catalog.jsonb_build_array(
    a.id, pg_catalog.to_char(a.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    a.actor_id, a.actor_role, a.action, a.subject_type, a.subject_id, pg_catalog.host(a.client_ip),
    a.request_id, a.details, pg_catalog.encode(a.prev_hash, 'hex'))::text"""


# --- the key -------------------------------------------------------------------------------


def load_audit_key(config: AuthConfig, data_dir: Path, *, create: bool = True) -> bytes:
    """SKINDOC_AUDIT_KEY, or the key file in the data folder (created, mode 0600, when `create`)."""
    if config.audit_key:
        return _parse_key(config.audit_key)
    path = data_dir / "auth" / KEY_FILE_NAME
    if not create and not path.exists():
        raise SystemExit(
            f"No audit checkpoint key: set SKINDOC_AUDIT_KEY, or SKINDOC_DATA_DIR to the servers' "
            f"data folder ({path} does not exist)."
        )
    text = create_or_read(
        path, lambda: secrets.token_hex(MIN_KEY_BYTES).encode() + b"\n", lambda data: data.endswith(b"\n")
    )
    return _parse_key(text.decode())


def _parse_key(text: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        try:
            key = base64.b64decode(
                text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None, validate=True
            )
        except (binascii.Error, ValueError):
            raise SystemExit("SKINDOC_AUDIT_KEY must be hex or base64.") from None
    if len(key) < MIN_KEY_BYTES:
        raise SystemExit(f"SKINDOC_AUDIT_KEY must hold at least {MIN_KEY_BYTES} bytes.")
    return key


def checkpoint_mac(key: bytes, checkpoint_id: int, audit_id: int, audit_hash: bytes, prev_mac: bytes | None) -> bytes:
    message = b"skindoc audit checkpoint\x00" + struct.pack(">qq", checkpoint_id, audit_id) + audit_hash
    return hmac.new(key, message + (prev_mac or b""), hashlib.sha256).digest()


# --- checking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    id: int
    reason: str


@dataclass(frozen=True)
class Verification:
    checked: int
    checkpoints: int
    # Rows after the last checkpoint: only the unkeyed chain vouches for them so far.
    unsigned: int
    broken: ChainBreak | None
    first_unsigned_at: datetime | None


async def verify_chain(conn: asyncpg.Connection, key: bytes, *, after: int = 0) -> Verification:
    """Recomputes every row's digest and link (from row `after` + 1) and checks every signed checkpoint."""
    walk = _Walk(key, after)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if after:
            await walk.start_after(conn)
            if walk.broken is not None:
                return Verification(0, 0, 0, walk.broken, None)
        cursor = conn.cursor(
            f"""SELECT a.id, a.prev_hash, a.hash, {_CANONICAL_ROW} AS canonical,
                       c.id AS checkpoint_id, c.audit_hash, c.prev_mac, c.mac
                FROM audit_log a LEFT JOIN audit_checkpoints c ON c.audit_id = a.id
                WHERE a.id > $1 ORDER BY a.id, c.id""",
            after,
            prefetch=1000,
        )
        async for row in cursor:
            if walk.broken is None:
                walk.step(row)
        if walk.broken is None:
            await walk.finish(conn)
    return Verification(
        walk.checked, walk.checkpoints, walk.checked - walk.signed_upto, walk.broken, walk.first_unsigned_at
    )


class _Walk:
    """One pass over the rows in chain order, remembering the first break."""

    def __init__(self, key: bytes, after: int) -> None:
        self.key = key
        self.expected_id = after + 1
        self.prev_hash: bytes | None = None
        self.prev_mac: bytes | None = None
        self.last_checkpoint = 0
        self.checked = 0
        self.checkpoints = 0
        self.signed_upto = 0
        self.signed_audit_id = after
        self.first_unsigned_at: datetime | None = None
        self.broken: ChainBreak | None = None

    async def start_after(self, conn: asyncpg.Connection) -> None:
        """Continues from the last checkpoint (at row expected_id - 1), trusting it once its row still matches."""
        after = self.expected_id - 1
        self.prev_hash = await conn.fetchval("SELECT hash FROM audit_log WHERE id = $1", after)
        last = await conn.fetchrow(
            "SELECT id, audit_hash, mac FROM audit_checkpoints WHERE audit_id = $1 ORDER BY id DESC LIMIT 1", after
        )
        if last is None or last["audit_hash"] != self.prev_hash:
            self.broken = ChainBreak(after, "it differs from what the last signed checkpoint recorded")
            return
        self.last_checkpoint, self.prev_mac, self.signed_audit_id = last["id"], last["mac"], after

    def step(self, row: asyncpg.Record) -> None:
        # A row is seen twice only when two checkpoints name it (only a forger makes that).
        if row["id"] != self.expected_id and row["id"] != self.expected_id - 1:
            self.broken = ChainBreak(row["id"], f"row(s) {self.expected_id}..{row['id'] - 1} are missing")
            return
        if row["id"] == self.expected_id:
            self.checked += 1
            if hashlib.sha256(row["canonical"].encode()).digest() != row["hash"]:
                self.broken = ChainBreak(row["id"], "its contents do not match its hash")
                return
            if row["prev_hash"] != self.prev_hash:
                self.broken = ChainBreak(row["id"], "its link to the previous row does not match")
                return
            self.prev_hash = row["hash"]
            self.expected_id += 1
        if row["checkpoint_id"] is not None:
            self._check_checkpoint(row)

    def _check_checkpoint(self, row: asyncpg.Record) -> None:
        number = row["checkpoint_id"]
        if number != self.last_checkpoint + 1:
            self.broken = ChainBreak(
                row["id"], f"signed checkpoint(s) {self.last_checkpoint + 1}..{number - 1} are missing"
            )
            return
        expected = checkpoint_mac(self.key, number, row["id"], row["audit_hash"], self.prev_mac)
        if row["prev_mac"] != self.prev_mac or not hmac.compare_digest(expected, row["mac"]):
            self.broken = ChainBreak(
                row["id"],
                f"signed checkpoint {number} does not verify (forged, altered, or "
                "signed with another key than SKINDOC_AUDIT_KEY / the key file)",
            )
            return
        if row["audit_hash"] != row["hash"]:
            self.broken = ChainBreak(
                row["id"],
                f"it differs from what signed checkpoint {number} recorded: the "
                f"rows up to {row['id']} were rewritten after it was signed",
            )
            return
        self.last_checkpoint, self.prev_mac = number, row["mac"]
        self.checkpoints += 1
        self.signed_upto = self.checked
        self.signed_audit_id = row["id"]

    async def finish(self, conn: asyncpg.Connection) -> None:
        self.first_unsigned_at = await conn.fetchval(
            "SELECT occurred_at FROM audit_log WHERE id = $1", self.signed_audit_id + 1
        )
        newest = await conn.fetchrow("SELECT id, audit_id FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        if newest is not None and newest["id"] != self.last_checkpoint:
            self.broken = ChainBreak(
                newest["audit_id"],
                f"signed checkpoint {newest['id']} names a row that is no longer in the chain (rows were removed)"
                if newest["audit_id"] >= self.expected_id
                else f"signed checkpoint(s) {self.last_checkpoint + 1}..{newest['id']} are missing",
            )


# --- signing -------------------------------------------------------------------------------


async def write_checkpoint(conn: asyncpg.Connection, key: bytes) -> int | None:
    """Signs the chain's head if it moved since the last checkpoint; returns the checkpoint's number.

    The rows since the last checkpoint are checked first, so a chain broken since then is reported,
    not signed."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CHECKPOINT_LOCK_ID)
        last = await conn.fetchrow("SELECT id, audit_id, mac FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        head = await conn.fetchrow("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        after = last["audit_id"] if last is not None else 0
        if head is None or head["id"] <= after:
            return None
    check = await verify_chain(conn, key, after=after)
    if check.broken is not None:
        log.error(
            "audit chain broken; not signing a checkpoint",
            extra={"row": check.broken.id, "reason": check.broken.reason},
        )
        return None
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CHECKPOINT_LOCK_ID)
        last = await conn.fetchrow("SELECT id, audit_id, mac FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        if last is not None and last["audit_id"] >= head["id"]:
            return None  # another node signed meanwhile
        number = (last["id"] if last is not None else 0) + 1
        prev_mac = last["mac"] if last is not None else None
        await conn.execute(
            "INSERT INTO audit_checkpoints (id, audit_id, audit_hash, prev_mac, mac) VALUES ($1, $2, $3, $4, $5)",
            number,
            head["id"],
            head["hash"],
            prev_mac,
            checkpoint_mac(key, number, head["id"], head["hash"], prev_mac),
        )
    # The log line is a copy kept outside PostgreSQL: it pins the head even if both tables are lost.
    log.info(
        "audit checkpoint signed",
        extra={"checkpoint": number, "audit_id": head["id"], "audit_hash": head["hash"].hex()},
    )
    return number


async def keep_checkpointing(pool: asyncpg.Pool, key: bytes, interval_s: float) -> None:
    """Runs in every server: signs the head every interval (the nodes take turns under the lock)."""

    async def sign() -> None:
        async with pool.acquire() as conn:
            await write_checkpoint(conn, key)

    await repeat_every(
        interval_s,
        sign,
        logger=log,
        failing="could not sign an audit checkpoint; retrying",
        working_again="signing audit checkpoints again",
        faults=(TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError),
    )
