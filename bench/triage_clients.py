"""The triage benchmark's clients: patients who upload photos over HTTP, and a doctor's Socket.IO console that
waits for each photo's score to reach the queue."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

import aiohttp
import socketio

from bench.accounts import Account, AccountMaker
from bench.photos import photo_bytes


@dataclass
class UploadTally:
    """What the uploads of a timed load got back."""

    accepted: int = 0
    refused: collections.Counter = field(default_factory=collections.Counter)
    upload_ms: list[float] = field(default_factory=list)


def photo_form(photo: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("body_site", "back")
    form.add_field("photo", photo, filename="lesion.jpg", content_type="image/jpeg")
    return form


async def open_cases(maker: AccountMaker, count: int, start: int = 0) -> list[tuple[Account, str]]:
    """(patient, consultation id) for `count` patients numbered from `start`, one open consultation each."""
    patients = await maker.make_many("patient", count, start)
    return [(patient, await maker.open_case(patient, start + i)) for i, patient in enumerate(patients)]


async def upload(
    session: aiohttp.ClientSession, base: str, patient: Account, case_id: str, photo: bytes
) -> tuple[int, dict]:
    async with session.post(
        f"{base}/api/v1/consultations/{case_id}/photos", data=photo_form(photo), headers=patient.headers
    ) as response:
        return response.status, await response.json()


async def console_update_latency(
    session: aiohttp.ClientSession, base: str, maker: AccountMaker, samples: int
) -> list[float]:
    """Seconds from starting an upload to a doctor's console receiving the queue with its score."""
    doctor = await maker.make("doctor", 0)
    scored: dict[str, asyncio.Event] = {}

    async def on_snapshot(snapshot: dict) -> None:
        for entry in snapshot["queue"]:
            if not entry["awaiting_score"] and entry["consultation_id"] in scored:
                scored[entry["consultation_id"]].set()

    console = socketio.AsyncClient(reconnection=False)
    console.on("queue:snapshot", on_snapshot)
    await console.connect(base, auth={"token": doctor.token}, transports=["websocket"])
    await console.call("queue:subscribe", {})
    latencies = []
    try:
        # Patients of their own, numbered apart from the load's.
        for index, (patient, case_id) in enumerate(await open_cases(maker, samples, start=100_000)):
            scored[case_id] = asyncio.Event()
            started = time.perf_counter()
            status, body = await upload(session, base, patient, case_id, photo_bytes(999, index))
            assert status == 201, body
            await asyncio.wait_for(scored[case_id].wait(), 30)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.3)
    finally:
        await console.disconnect()
    return latencies


async def upload_backlog(
    session: aiohttp.ClientSession, base: str, cases: list[tuple[Account, str]], count: int
) -> None:
    """`count` photos queued while no worker runs (the worker then meets a full stream)."""

    async def one(index: int) -> None:
        patient, case_id = cases[index % len(cases)]
        status, body = await upload(session, base, patient, case_id, photo_bytes(index % len(cases), 100_000 + index))
        assert status == 201, body

    for start in range(0, count, len(cases)):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + len(cases)))))


async def upload_until(
    session: aiohttp.ClientSession,
    base: str,
    patient: Account,
    case_id: str,
    photos: list[bytes],
    deadline: float,
    tally: UploadTally,
) -> None:
    """One patient uploading one photo after another until `deadline` (time.monotonic)."""
    index = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        status, body = await upload(session, base, patient, case_id, photos[index % len(photos)])
        index += 1
        if status == 201 and not body["photos"][0]["duplicate"]:
            tally.accepted += 1
            tally.upload_ms.append((time.perf_counter() - started) * 1000)
        else:
            tally.refused[body.get("code", str(status))] += 1
