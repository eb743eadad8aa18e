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

Photos are 1280x960 JPEGs (bench/photos.py), the size the patient page downscales to before uploading.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio as redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accounts import AccountMaker
from bench.cluster import DEFAULT_PG_ADMIN_URL, Cluster
from bench.photos import photo_bytes
from bench.resources import cpu_seconds
from bench.tables import percentile
from bench.triage_clients import (
    UploadTally,
    console_update_latency,
    open_cases,
    upload_backlog,
    upload_until,
)
from tests.live_server import scratch_database


@dataclass
class RunResult:
    mode: str
    seconds: float
    uploads: UploadTally = field(default_factory=UploadTally)
    score_latency_ms: list[float] = field(default_factory=list)
    scored_in_window: int = 0
    unscored: int = 0
    batch_photos: collections.Counter = field(default_factory=collections.Counter)
    console_s: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)
    drain_rate: float | None = None
    window: tuple[float, float] = (0.0, 0.0)  # the timed load's start and end (time.time)


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


async def measure(db_url: str, result: RunResult, drain_s: float) -> None:
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
                WHERE p.created_at >= to_timestamp($1)""",
            result.window[0],
        )
        result.unscored = await conn.fetchval("SELECT count(*) FROM triage_photos WHERE status <> 'scored'")
    finally:
        await conn.close()
    start, end = result.window
    for row in rows:
        result.score_latency_ms.append(float(row["latency_ms"]))
        result.batch_photos[row["batch_size"]] += 1
        if start <= float(row["scored_epoch"]) <= end:
            result.scored_in_window += 1


async def run(mode: str, max_batch: int, args: argparse.Namespace, folder: Path) -> RunResult:
    stream = f"bench:triage:{secrets.token_hex(4)}"
    settings = {
        "SKINDOC_TRIAGE_STREAM": stream,
        "SKINDOC_TRIAGE_MAX_BATCH": str(max_batch),
        # One consultation per simulated client keeps uploading for the whole run.
        "SKINDOC_TRIAGE_MAX_PHOTOS": "100000",
        "SKINDOC_INPROCESS_WORKER": "false",
    }
    if args.model:
        settings["SKINDOC_TRIAGE_MODEL_DIR"] = str(args.model.resolve())
    (folder / mode).mkdir()
    async with scratch_database(args.database_url, "skindoc_bench_triage") as db_url:
        cluster = Cluster(db_url, args.redis_url, folder / mode, extra_env=settings)
        try:
            await cluster.start(1)
            result = await load(cluster, mode, args)
            await measure(db_url, result, args.drain_seconds)
        finally:
            cluster.stop()
            client = redis.Redis.from_url(args.redis_url)
            await client.delete(stream)
            await client.aclose()
    return result


async def load(cluster: Cluster, mode: str, args: argparse.Namespace) -> RunResult:
    """Backlog, worker, console probe (batched run), then `args.seconds` of uploads from every client."""
    server = cluster.nodes[0]
    result = RunResult(mode, args.seconds)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as session:
        maker = AccountMaker(cluster, session, secrets.token_hex(3))
        cases = await open_cases(maker, args.concurrency)
        if args.backlog:
            await upload_backlog(session, server.url, cases, args.backlog)
        worker = await cluster.start_worker({"SKINDOC_LOG_LEVEL": args.worker_log_level})
        if args.backlog:
            result.drain_rate = args.backlog / await seconds_to_drain(cluster.database_url)
        if mode == "batched" and args.console_samples:
            result.console_s = await console_update_latency(session, server.url, maker, args.console_samples)
        per_client = int(args.seconds * 80 / args.concurrency) + 20
        photos = [[photo_bytes(c, i) for i in range(per_client)] for c in range(args.concurrency)]
        pids = {"serve": server.pid, "worker": worker.pid, "bench client": os.getpid()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.time()
        deadline = time.monotonic() + args.seconds
        await asyncio.gather(
            *(
                upload_until(session, server.url, patient, case_id, photos[c], deadline, result.uploads)
                for c, (patient, case_id) in enumerate(cases)
            )
        )
        result.window = (start, time.time())
        result.cpu_s = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    result.seconds = result.window[1] - result.window[0]
    return result


def report(result: RunResult) -> None:
    uploads = result.uploads
    calls = {size: photos // size for size, photos in sorted(result.batch_photos.items())}
    print(f"\n== {result.mode} ==")
    if result.console_s:
        print(
            f"idle upload -> console queue update: p50 {percentile(result.console_s, 50) * 1000:.0f} ms, "
            f"max {max(result.console_s) * 1000:.0f} ms over {len(result.console_s)} uploads"
        )
    if result.drain_rate:
        print(f"worker on a backlog   {result.drain_rate:.1f} photos/s (queued first, then one worker started)")
    print(
        f"accepted uploads      {uploads.accepted} in {result.seconds:.1f} s = "
        f"{uploads.accepted / result.seconds:.1f}/s"
        + (f"  (refused: {dict(uploads.refused)})" if uploads.refused else "")
    )
    print(
        f"upload request        p50 {percentile(uploads.upload_ms, 50):.0f} ms, "
        f"p99 {percentile(uploads.upload_ms, 99):.0f} ms"
    )
    print(f"scored during load    {result.scored_in_window / result.seconds:.1f} photos/s")
    print(
        f"upload-to-score       p50 {percentile(result.score_latency_ms, 50):.0f} ms, "
        f"p99 {percentile(result.score_latency_ms, 99):.0f} ms, max {max(result.score_latency_ms, default=0):.0f} ms"
        f"  ({len(result.score_latency_ms)} scored, {result.unscored} not scored after draining)"
    )
    if uploads.accepted:
        print(
            "CPU per upload        "
            + ", ".join(f"{name} {seconds / uploads.accepted * 1000:.1f} ms" for name, seconds in result.cpu_s.items())
            + f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
    print("model calls by batch  " + ", ".join(f"{size}: {n}" for size, n in calls.items()))
    if calls:
        print(
            f"mean batch            {sum(result.batch_photos.values()) / sum(calls.values()):.1f} photos per model call"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per run")
    parser.add_argument("--concurrency", type=int, default=16, help="simultaneous uploading clients")
    parser.add_argument("--max-batch", type=int, default=32, help="the batched run's SKINDOC_TRIAGE_MAX_BATCH")
    parser.add_argument("--drain-seconds", type=float, default=120.0, help="how long to wait for the backlog")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_PG_ADMIN_URL,
        help="a PostgreSQL admin URL: each run creates and drops its own database",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped weights)")
    parser.add_argument(
        "--backlog", type=int, default=400, help="photos queued before the worker starts, to time its drain (0: none)"
    )
    parser.add_argument(
        "--console-samples",
        type=int,
        default=10,
        help="idle uploads timed to a doctor's console before the batched load (0: none)",
    )
    parser.add_argument("--worker-log-level", default="INFO", help="DEBUG logs each batch's timings")
    parser.add_argument("--keep-logs", type=Path, help="copy the server and worker logs into this folder")
    parser.add_argument("--only", choices=("batched", "unbatched"), help="run one mode only")
    args = parser.parse_args()
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
                for log in Path(tmp).glob("*/*.log"):  # <mode>/node0.log, <mode>/worker0.log
                    (args.keep_logs / f"{log.parent.name}-{log.name}").write_bytes(log.read_bytes())
    if len(results) == 2 and results[1].scored_in_window:
        ratio = results[0].scored_in_window / results[1].scored_in_window
        print(f"\nbatched / unbatched scoring throughput under load: {ratio:.1f}x")
        if results[0].drain_rate and results[1].drain_rate:
            print(
                f"batched / unbatched worker throughput on a backlog: "
                f"{results[0].drain_rate / results[1].drain_rate:.1f}x"
            )


if __name__ == "__main__":
    asyncio.run(main())
