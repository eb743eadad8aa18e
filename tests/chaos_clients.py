"""The chaos tests' users: a chat client and an uploader that keep going through a fault and record every
acknowledgement, and the checks made afterwards (nothing acknowledged lost or doubled, every accepted photo
scored once)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import socketio

from tests.chaos_support import wait_until
from tests.test_triage_support import jpeg

# After the store is back, every accepted photo is scored within this long.
SCORING_BOUND_S = 60.0


# ---- chatting through a fault --------------------------------------------------------------------


class ChatSender:
    """Sends numbered messages one after another and records each acknowledged one (client id → seq).

    As the real-time API asks of a client: a `store_unavailable` ack means "not stored, send it
    again" (same client id); a dropped connection means reconnecting (to `urls`, in turn) and
    sending the unacknowledged message again.
    """

    def __init__(self, urls: list[str], headers: dict[str, str], case_id: str, prefix: str) -> None:
        self.urls = urls
        self.token = headers["Authorization"].removeprefix("Bearer ")
        self.case_id = case_id
        self.prefix = prefix
        self.acked: dict[str, int] = {}
        self.refused: list[dict[str, Any]] = []
        self.reconnects = 0
        self.ack_times: list[float] = []
        self._client: socketio.AsyncClient | None = None
        self._dropped = asyncio.Event()
        self._stop = asyncio.Event()

    async def _connected(self) -> socketio.AsyncClient:
        while self._client is None or not self._client.connected:
            url = self.urls[self.reconnects % len(self.urls)]
            client = socketio.AsyncClient(reconnection=False)
            dropped = asyncio.Event()
            client.on("disconnect", lambda *args, dropped=dropped: dropped.set())
            try:
                await client.connect(url, auth={"token": self.token}, transports=["websocket"], wait_timeout=3)
                self._client, self._dropped = client, dropped
            except Exception:
                self.reconnects += 1
                await asyncio.sleep(0.2)
        return self._client

    async def send_until_stopped(self, pause_s: float = 0.02) -> None:
        n = 0
        while not self._stop.is_set():
            client_msg_id = f"{self.prefix}-{n}"
            while client_msg_id not in self.acked:
                await self._send(client_msg_id)
            n += 1
            await asyncio.sleep(pause_s)

    async def _send(self, client_msg_id: str) -> None:
        client = await self._connected()
        sending = asyncio.ensure_future(
            client.call(
                "message:send",
                {"consultation_id": self.case_id, "client_msg_id": client_msg_id, "body": f"message {client_msg_id}"},
                timeout=5,
            )
        )
        dropped = asyncio.ensure_future(self._dropped.wait())
        await asyncio.wait({sending, dropped}, return_when=asyncio.FIRST_COMPLETED)
        dropped.cancel()
        try:
            if not sending.done():
                sending.cancel()
                raise ConnectionError("the connection dropped before the ack")
            ack = sending.result()
        except Exception:
            # No ack: the connection dropped (or the node died). Not known to be stored: send again.
            await client.disconnect()
            self.reconnects += 1
            return
        if ack.get("ok"):
            self.acked[client_msg_id] = ack["message"]["seq"]
            self.ack_times.append(time.monotonic())
            return
        assert ack["error"]["code"] == "store_unavailable", ack
        self.refused.append(ack["error"])
        await asyncio.sleep(0.2)

    def first_ack_after(self, moment: float) -> float | None:
        return next((t for t in self.ack_times if t >= moment), None)

    async def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        if self._client is not None and self._client.connected:
            await self._client.disconnect()

    async def history(self) -> list[dict[str, Any]]:
        """Every stored message of the case, in order, read back through message:sync pages."""
        client = await self._connected()
        messages: list[dict[str, Any]] = []
        while True:
            ack = await client.call(
                "message:sync",
                {"consultation_id": self.case_id, "after_seq": messages[-1]["seq"] if messages else 0},
                timeout=10,
            )
            assert ack["ok"], ack
            messages += ack["messages"]
            if not ack["has_more"]:
                return messages


def assert_nothing_lost_or_doubled(history: list[dict[str, Any]], *senders: ChatSender) -> None:
    seqs = [m["seq"] for m in history]
    assert seqs == list(range(1, len(seqs) + 1)), "in order, no gap, no duplicate"
    ids = [m["client_msg_id"] for m in history]
    assert len(ids) == len(set(ids)), "no message stored twice"
    by_id = {m["client_msg_id"]: m["seq"] for m in history}
    for sender in senders:
        assert sender.acked, f"{sender.prefix} got no acknowledgement at all"
        for client_msg_id, seq in sender.acked.items():
            assert by_id.get(client_msg_id) == seq, f"acknowledged {client_msg_id} (seq {seq}) is missing"


# ---- uploading through a fault -------------------------------------------------------------------


class Uploader:
    """Uploads a new photo now and then; records which were accepted (201) and which were refused (503)."""

    def __init__(self, url: str, headers: dict[str, str], case_id: str, seed: int) -> None:
        self.url = url
        self.headers = headers
        self.case_id = case_id
        self.seed = seed
        self.accepted: list[str] = []
        self.refused: list[int] = []

    async def upload_one(self, session: aiohttp.ClientSession, photos: int = 1) -> int | None:
        """Uploads `photos` new photos in one request; returns the status (None: no answer)."""
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("body_site", "back")
        for _ in range(photos):
            form.add_field("photo", jpeg(seed=self.seed), filename="lesion.jpg", content_type="image/jpeg")
            self.seed += 1
        try:
            async with session.post(
                f"{self.url}/api/v1/consultations/{self.case_id}/photos", data=form, headers=self.headers
            ) as r:
                body = await r.json(content_type=None)
                if r.status == 201:
                    self.accepted += [p["id"] for p in body["photos"] if not p["duplicate"]]
                else:
                    assert r.status == 503 and body["code"] == "store_unavailable", (r.status, body)
                    assert "Retry-After" in r.headers
                    self.refused.append(r.status)
                return r.status
        except aiohttp.ClientError:
            return None


async def photos_scored(database_url: str, photo_ids: list[str]) -> dict[str, int]:
    """For each photo, how many score rows it has (exactly one per model version is right)."""
    try:
        conn = await asyncpg.connect(database_url, timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return {}
    try:
        rows = await conn.fetch(
            "SELECT p.id::text AS id, count(s.photo_id) AS n FROM triage_photos p "
            "LEFT JOIN triage_photo_scores s ON s.photo_id = p.id "
            "WHERE p.id = ANY($1::uuid[]) GROUP BY p.id",
            photo_ids,
        )
    finally:
        await conn.close()
    return {r["id"]: r["n"] for r in rows}


async def wait_all_scored(database_url: str, photo_ids: list[str], timeout: float = SCORING_BOUND_S) -> float:
    async def done() -> bool:
        counts = await photos_scored(database_url, photo_ids)
        return len(counts) == len(photo_ids) and all(n >= 1 for n in counts.values())

    took = await wait_until(done, timeout, "every accepted photo scored", interval=0.2)
    counts = await photos_scored(database_url, photo_ids)
    assert set(counts.values()) == {1}, f"a photo scored more than once: {counts}"
    return took
