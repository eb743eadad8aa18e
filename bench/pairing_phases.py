"""The pairing benchmark's doctors (consoles connected over Socket.IO) and its three phases: manual take-next
under contention, freed capacity one doctor at a time, and all at once (bench/pairing.py runs them)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import socketio

from bench.accounts import Account
from bench.resources import CpuMeter, PgWaitSampler


@dataclass
class Console:
    """A doctor's connected console: the cases it holds and a waiter for its next assignment."""

    account: Account
    url: str
    sio: socketio.AsyncClient | None = None
    active: set[str] = field(default_factory=set)
    next_assignment: asyncio.Future | None = None
    snapshots: int = 0

    def on_updated(self, data: dict) -> None:
        case = data.get("consultation", {})
        if data.get("reason") != "assigned" or case.get("doctor_id") != self.account.user_id:
            return
        if case["id"] in self.active:
            return
        self.active.add(case["id"])
        if self.next_assignment is not None and not self.next_assignment.done():
            self.next_assignment.set_result(time.monotonic())

    def on_snapshot(self, data: dict) -> None:
        self.snapshots += 1

    async def call(self, event: str, payload: dict) -> dict:
        return await self.sio.call(event, payload, timeout=60)


@dataclass
class PhaseResult:
    name: str
    assignments: int
    seconds: float
    latencies: list[float]
    refusals: dict[str, int]
    cpu: CpuMeter
    note: str = ""
    pg_waits: str = ""


async def connect_consoles(consoles: list[Console], session: aiohttp.ClientSession) -> None:
    limit = asyncio.Semaphore(25)

    async def one(console: Console) -> None:
        sio = socketio.AsyncClient(reconnection=False, http_session=session, handle_sigint=False, request_timeout=30)
        sio.on("consultation:updated", console.on_updated)
        sio.on("queue:snapshot", console.on_snapshot)
        async with limit:
            await sio.connect(
                console.url, transports=["websocket"], auth={"token": console.account.token}, wait_timeout=60
            )
            console.sio = sio
            ack = await console.call("queue:subscribe", {})
        if not ack.get("ok"):
            raise RuntimeError(f"queue:subscribe refused: {ack}")

    await asyncio.gather(*(one(c) for c in consoles))


def new_meter(pids: list[int]) -> CpuMeter:
    meter = CpuMeter(pids)
    meter.start()
    return meter


async def manual_contention(consoles: list[Console], takers: int, pids: list[int]) -> PhaseResult:
    latencies: list[float] = []
    refusals: dict[str, int] = {}
    taken: list[str] = []

    async def take_until_full(console: Console) -> None:
        while True:
            started = time.monotonic()
            ack = await console.call("queue:take", {})
            if ack.get("ok"):
                latencies.append(time.monotonic() - started)
                taken.append(ack["consultation"]["id"])
                console.active.add(ack["consultation"]["id"])
                continue
            code = ack["error"]["code"]
            refusals[code] = refusals.get(code, 0) + 1
            if code in ("doctor_at_capacity", "queue_empty"):
                return

    meter = new_meter(pids)
    started = time.monotonic()
    await asyncio.gather(*(take_until_full(c) for c in consoles for _ in range(takers)))
    seconds = time.monotonic() - started
    meter.stop()
    twice = len(taken) - len(set(taken))
    note = f"{len(consoles)} doctors x {takers} concurrent takers; cases acked to two doctors: {twice}"
    return PhaseResult("manual take-next under contention", len(taken), seconds, latencies, refusals, meter, note)


async def resolve_and_wait(console: Console, refusals: dict[str, int]) -> float | None:
    """Resolves one of the console's cases; the seconds until its next case is assigned (None: none came)."""
    case_id = console.active.pop()
    console.next_assignment = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    ack = await console.call(
        "consultation:resolve", {"consultation_id": case_id, "outcome": "reassure", "note": "benchmark"}
    )
    if not ack.get("ok"):
        code = ack["error"]["code"]
        refusals[code] = refusals.get(code, 0) + 1
        return None
    try:
        assigned_at = await asyncio.wait_for(console.next_assignment, timeout=10)
    except TimeoutError:
        refusals["no_assignment_within_10s"] = refusals.get("no_assignment_within_10s", 0) + 1
        return None
    return assigned_at - started


async def freed_one_at_a_time(consoles: list[Console], resolves: int, pids: list[int]) -> PhaseResult:
    latencies: list[float] = []
    refusals: dict[str, int] = {}
    meter = new_meter(pids)
    started = time.monotonic()
    for k in range(resolves):
        latency = await resolve_and_wait(consoles[k % len(consoles)], refusals)
        if latency is not None:
            latencies.append(latency)
    seconds = time.monotonic() - started
    meter.stop()
    return PhaseResult(
        "freed capacity, one doctor at a time",
        len(latencies),
        seconds,
        latencies,
        refusals,
        meter,
        "sequential resolve -> auto assignment",
    )


async def freed_all_at_once(consoles: list[Console], burst: int, pids: list[int]) -> PhaseResult:
    refusals: dict[str, int] = {}
    meter = new_meter(pids)
    started = time.monotonic()
    found = await asyncio.gather(*(resolve_and_wait(c, refusals) for c in consoles))
    seconds = time.monotonic() - started
    meter.stop()
    latencies = [x for x in found if x is not None]
    return PhaseResult(
        f"freed capacity, all {len(consoles)} doctors at once (burst {burst})",
        len(latencies),
        max(latencies, default=seconds),
        latencies,
        refusals,
        meter,
        "seconds = until the last doctor's next case arrived",
    )


async def sampled(database_url: str, phase) -> PhaseResult:
    """Runs a phase while sampling what the database's backends wait on."""
    sampler = PgWaitSampler(database_url)
    sampler.start()
    try:
        result = await phase
    finally:
        await sampler.stop()
    result.pg_waits = sampler.summary(4)
    return result
