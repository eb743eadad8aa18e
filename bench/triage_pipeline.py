"""Triage pipeline benchmark: concurrent photo uploads over HTTP for a bounded time, scored by a separate worker.

Runs the whole system twice on a fresh database each time, as deployed: `skindoc serve` and
`skindoc worker` processes on the machine's PostgreSQL and Redis, once with batching (the
worker's SKINDOC_TRIAGE_MAX_BATCH) and once without (batch size 1). Prints accepted uploads/s,
upload-to-score latency p50/p99 (from the database clock: photo stored → score committed),
the batch-size histogram and the ratio of scoring throughputs. Each run first queues a backlog of
photos with no worker running, then starts the worker and times the drain: the worker's own
throughput, whatever the upload side can offer. Before the batched run's load, a
doctor's Socket.IO console measures upload → queue update on the otherwise idle system.

    .venv/bin/python bench/triage_pipeline.py --seconds 20 --concurrency 16

Photos are 1280x960 JPEGs, the size the patient page downscales to before uploading.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import io
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import redis.asyncio as redis
import socketio
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.live_server import LiveServer, start_server

PASSWORD = "bench passphrase not for production 7"
SYMPTOMS = {"size_changed": True, "shape_irregular": False, "colour_irregular": True, "diameter_7mm": False,
            "inflamed": False, "oozing": False, "sensation_changed": False, "duration": "weeks"}


@dataclass
class RunResult:
    mode: str
    seconds: float
    accepted: int = 0
    refused: collections.Counter = field(default_factory=collections.Counter)
    upload_ms: list[float] = field(default_factory=list)
    score_latency_ms: list[float] = field(default_factory=list)
    scored_in_window: int = 0
    unscored: int = 0
    batch_photos: collections.Counter = field(default_factory=collections.Counter)
    console_s: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)
    drain_rate: float | None = None


@functools.cache
def skin_texture(client: int) -> Image.Image:
    """Skin-toned 1280x960 texture: a photo's fine detail is what makes JPEG work hard (flat colour is free)."""
    noise = Image.frombytes("L", (1280, 960), random.Random(client).randbytes(1280 * 960))
    grain = noise.filter(ImageFilter.GaussianBlur(2))
    return Image.merge("RGB", [grain.point(lambda v, base=base: base + v // 6) for base in (190, 140, 115)])


def photo_bytes(client: int, index: int) -> bytes:
    """A distinct 1280x960 JPEG per (client, index), so no upload is a duplicate of another."""
    image = skin_texture(client).copy()
    draw = ImageDraw.Draw(image)
    x, y = 400 + (index * 7) % 300, 300 + (client * 11) % 200
    draw.ellipse((x, y, x + 260 + index % 50, y + 200), fill=(90 + index % 60, 55, 40))
    draw.text((10, 10), f"{client}-{index}", fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def create_database(admin_url: str) -> str:
    name = f"skindoc_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def start_worker(env: dict[str, str], log_path: Path, timeout: float = 180.0) -> subprocess.Popen:
    """`skindoc worker`, once it has compiled every batch size and joined the consumer group."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "web.cli", "worker"], env={**os.environ, **env},
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")
        if b"triage worker ready" in log_path.read_bytes():
            return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"worker not ready in {timeout}s: {log_path.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def open_cases(session: aiohttp.ClientSession, base: str, count: int) -> list[tuple[str, str]]:
    """(access token, consultation id) for `count` patients, one open consultation each."""
    cases = []
    for _ in range(count):
        email = f"bench-{secrets.token_hex(5)}@example.org"
        async with session.post(f"{base}/api/v1/auth/register",
                                json={"email": email, "password": PASSWORD, "name": "Bench patient"}) as r:
            assert r.status == 201, await r.text()
        async with session.post(f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
            token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(f"{base}/api/v1/consultations", headers=headers,
                                json={"description": "bench", "body_site": "back", "symptoms": SYMPTOMS}) as r:
            assert r.status == 201, await r.text()
            cases.append((token, (await r.json())["id"]))
    return cases


async def console_update_latency(session: aiohttp.ClientSession, base: str, env: dict[str, str],
                                 samples: int) -> list[float]:
    """Seconds from starting an upload to a doctor's console receiving the queue with its score."""
    email = f"bench-doctor-{secrets.token_hex(4)}@example.org"
    async with session.post(f"{base}/api/v1/auth/register",
                            json={"email": email, "password": PASSWORD, "name": "Bench doctor", "role": "doctor"}) as r:
        assert r.status == 201, await r.text()
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "web.cli", "admin", "approve", email],
                            env={**os.environ, **env}, check=True, capture_output=True, cwd=REPO)
    async with session.post(f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
        doctor_token = (await r.json())["access_token"]
    scored: dict[str, asyncio.Event] = {}

    async def on_snapshot(snapshot: dict) -> None:
        for entry in snapshot["queue"]:
            if not entry["awaiting_score"] and entry["consultation_id"] in scored:
                scored[entry["consultation_id"]].set()

    console = socketio.AsyncClient(reconnection=False)
    console.on("queue:snapshot", on_snapshot)
    await console.connect(base, auth={"token": doctor_token}, transports=["websocket"])
    await console.call("queue:subscribe", {})
    latencies = []
    try:
        for index, (token, consultation_id) in enumerate(await open_cases(session, base, samples)):
            scored[consultation_id] = asyncio.Event()
            data = aiohttp.FormData(default_to_multipart=True)
            data.add_field("body_site", "back")
            data.add_field("photo", photo_bytes(999, index), filename="lesion.jpg", content_type="image/jpeg")
            started = time.perf_counter()
            async with session.post(f"{base}/api/v1/consultations/{consultation_id}/photos", data=data,
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 201, await r.text()
            await asyncio.wait_for(scored[consultation_id].wait(), 30)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.3)
    finally:
        await console.disconnect()
    return latencies


async def upload_backlog(session: aiohttp.ClientSession, base: str, cases: list[tuple[str, str]],
                         count: int) -> None:
    """`count` photos queued while no worker runs (the worker then meets a full stream)."""
    async def one(index: int) -> None:
        token, consultation_id = cases[index % len(cases)]
        data = aiohttp.FormData(default_to_multipart=True)
        data.add_field("body_site", "back")
        data.add_field("photo", photo_bytes(index % len(cases), 100_000 + index), filename="lesion.jpg",
                       content_type="image/jpeg")
        async with session.post(f"{base}/api/v1/consultations/{consultation_id}/photos", data=data,
                                headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 201, await r.text()

    for start in range(0, count, len(cases)):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + len(cases)))))


async def seconds_to_drain(db_url: str) -> float:
    """From now (the worker just became ready) until no photo waits for a score."""
    started = time.monotonic()
    conn = await asyncpg.connect(db_url)
    try:
        while await conn.fetchval("SELECT count(*) FROM triage_photos WHERE status = 'pending'"):
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return time.monotonic() - started


async def upload_for(session: aiohttp.ClientSession, base: str, client: int, token: str, consultation_id: str,
                     photos: list[bytes], deadline: float, result: RunResult) -> None:
    url = f"{base}/api/v1/consultations/{consultation_id}/photos"
    headers = {"Authorization": f"Bearer {token}"}
    index = 0
    while time.monotonic() < deadline:
        data = aiohttp.FormData(default_to_multipart=True)
        data.add_field("body_site", "back")
        data.add_field("photo", photos[index % len(photos)], filename="lesion.jpg", content_type="image/jpeg")
        index += 1
        started = time.perf_counter()
        async with session.post(url, data=data, headers=headers) as response:
            body = await response.json()
        if response.status == 201 and not body["photos"][0]["duplicate"]:
            result.accepted += 1
            result.upload_ms.append((time.perf_counter() - started) * 1000)
        else:
            result.refused[body.get("code", str(response.status))] += 1


async def measure(db_url: str, result: RunResult, window: tuple[float, float], drain_s: float) -> None:
    """Waits for the backlog to drain, then reads latencies and batch sizes from the database."""
    conn = await asyncpg.connect(db_url)
    try:
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            if not await conn.fetchval("SELECT count(*) FROM triage_photos WHERE status = 'pending'"):
                break
            await asyncio.sleep(0.5)
        # Photos of the load only (not the console probe's), by the database's clock.
        rows = await conn.fetch(
            """SELECT extract(epoch FROM s.scored_at - p.created_at) * 1000 AS latency_ms, s.batch_size,
                      extract(epoch FROM s.scored_at) AS scored_epoch
                 FROM triage_photos p JOIN triage_photo_scores s ON s.photo_id = p.id
                WHERE p.created_at >= to_timestamp($1)""", window[0])
        result.unscored = await conn.fetchval("SELECT count(*) FROM triage_photos WHERE status <> 'scored'")
    finally:
        await conn.close()
    start, end = window
    for row in rows:
        result.score_latency_ms.append(float(row["latency_ms"]))
        result.batch_photos[row["batch_size"]] += 1
        if start <= float(row["scored_epoch"]) <= end:
            result.scored_in_window += 1


async def run(mode: str, max_batch: int, args: argparse.Namespace, workdir: Path) -> RunResult:
    name = await create_database(args.database_url)
    db_url = with_database(args.database_url, name)
    tag = secrets.token_hex(4)
    env = {
        "SKINDOC_DATABASE_URL": db_url,
        "SKINDOC_REDIS_URL": args.redis_url,
        "SKINDOC_DATA_DIR": str(workdir / "var"),
        "SKINDOC_TRIAGE_STREAM": f"bench:triage:{tag}",
        "SKINDOC_SOCKETIO_CHANNEL": f"bench-socketio-{tag}",
        "SKINDOC_TRIAGE_MAX_BATCH": str(max_batch),
        # One consultation per simulated client keeps uploading for the whole run.
        "SKINDOC_TRIAGE_MAX_PHOTOS": "100000",
        "SKINDOC_ARGON2_TIME_COST": "1",
        "SKINDOC_ARGON2_MEMORY_KIB": "1024",
        "SKINDOC_LOG_LEVEL": "WARNING",
        "SKINDOC_INPROCESS_WORKER": "false",
    }
    if args.model:
        env["SKINDOC_TRIAGE_MODEL_DIR"] = str(args.model)
    server: LiveServer | None = None
    worker: subprocess.Popen | None = None
    try:
        server = start_server(env, workdir / f"serve-{mode}.log")
        result = RunResult(mode, args.seconds)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            cases = await open_cases(session, server.url, args.concurrency)
            if args.backlog:
                await upload_backlog(session, server.url, cases, args.backlog)
            worker = await asyncio.to_thread(start_worker, {**env, "SKINDOC_LOG_LEVEL": args.worker_log_level},
                                             workdir / f"worker-{mode}.log")
            if args.backlog:
                result.drain_rate = args.backlog / await seconds_to_drain(db_url)
            if mode == "batched" and args.console_samples:
                result.console_s = await console_update_latency(session, server.url, env, args.console_samples)
            per_client = int(args.seconds * 80 / args.concurrency) + 20
            photos = [[photo_bytes(c, i) for i in range(per_client)] for c in range(args.concurrency)]
            pids = {"serve": server.process.pid, "worker": worker.pid, "bench client": os.getpid()}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            start = time.time()
            deadline = time.monotonic() + args.seconds
            await asyncio.gather(*(upload_for(session, server.url, c, token, cid, photos[c], deadline, result)
                                   for c, (token, cid) in enumerate(cases)))
            end = time.time()
            result.cpu_s = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        result.seconds = end - start
        await measure(db_url, result, (start, end), args.drain_seconds)
        return result
    finally:
        if worker is not None:
            stop(worker)
        if server is not None:
            server.stop()
        await drop_database(args.database_url, name)
        client = redis.Redis.from_url(args.redis_url)
        await client.delete(env["SKINDOC_TRIAGE_STREAM"])
        await client.aclose()


def report(result: RunResult) -> None:
    calls = {size: photos // size for size, photos in sorted(result.batch_photos.items())}
    print(f"\n== {result.mode} ==")
    if result.console_s:
        print(f"idle upload -> console queue update: p50 {percentile(result.console_s, 0.5) * 1000:.0f} ms, "
              f"max {max(result.console_s) * 1000:.0f} ms over {len(result.console_s)} uploads")
    if result.drain_rate:
        print(f"worker on a backlog   {result.drain_rate:.1f} photos/s (queued first, then one worker started)")
    print(f"accepted uploads      {result.accepted} in {result.seconds:.1f} s = {result.accepted / result.seconds:.1f}/s"
          + (f"  (refused: {dict(result.refused)})" if result.refused else ""))
    print(f"upload request        p50 {percentile(result.upload_ms, 0.5):.0f} ms, "
          f"p99 {percentile(result.upload_ms, 0.99):.0f} ms")
    print(f"scored during load    {result.scored_in_window / result.seconds:.1f} photos/s")
    print(f"upload-to-score       p50 {percentile(result.score_latency_ms, 0.5):.0f} ms, "
          f"p99 {percentile(result.score_latency_ms, 0.99):.0f} ms, max {max(result.score_latency_ms, default=0):.0f} ms"
          f"  ({len(result.score_latency_ms)} scored, {result.unscored} not scored after draining)")
    if result.accepted:
        print("CPU per upload        " + ", ".join(f"{name} {seconds / result.accepted * 1000:.1f} ms"
                                                   for name, seconds in result.cpu_s.items())
              + f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("model calls by batch  " + ", ".join(f"{size}: {n}" for size, n in calls.items()))
    if calls:
        print(f"mean batch            {sum(result.batch_photos.values()) / sum(calls.values()):.1f} photos per model call")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per run")
    parser.add_argument("--concurrency", type=int, default=16, help="simultaneous uploading clients")
    parser.add_argument("--max-batch", type=int, default=32, help="the batched run's SKINDOC_TRIAGE_MAX_BATCH")
    parser.add_argument("--drain-seconds", type=float, default=120.0, help="how long to wait for the backlog")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL admin URL: each run creates and drops its own database")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped weights)")
    parser.add_argument("--backlog", type=int, default=400,
                        help="photos queued before the worker starts, to time its drain (0: none)")
    parser.add_argument("--console-samples", type=int, default=10,
                        help="idle uploads timed to a doctor's console before the batched load (0: none)")
    parser.add_argument("--worker-log-level", default="INFO", help="DEBUG logs each batch's timings")
    parser.add_argument("--keep-logs", type=Path, help="copy the server and worker logs into this folder")
    parser.add_argument("--only", choices=("batched", "unbatched"), help="run one mode only")
    args = parser.parse_args()
    os.chdir(REPO)
    results = []
    with tempfile.TemporaryDirectory(prefix="skindoc-bench-") as tmp:
        try:
            for mode, max_batch in (("batched", args.max_batch), ("unbatched", 1)):
                if args.only and args.only != mode:
                    continue
                results.append(await run(mode, max_batch, args, Path(tmp)))
                report(results[-1])
        finally:
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in Path(tmp).glob("*.log"):
                    (args.keep_logs / log.name).write_bytes(log.read_bytes())
    if len(results) == 2 and results[1].scored_in_window:
        ratio = results[0].scored_in_window / results[1].scored_in_window
        print(f"\nbatched / unbatched scoring throughput under load: {ratio:.1f}x")
        if results[0].drain_rate and results[1].drain_rate:
            print(f"batched / unbatched worker throughput on a backlog: "
                  f"{results[0].drain_rate / results[1].drain_rate:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
