"""Pairing: assignments per second under contention, and the wait from "doctor frees capacity" to "next case assigned".

    python bench/pairing.py [--nodes 1|2] [--doctors 50] [--capacity 3] [--resolves 50] [--bursts 2]

Set-up: D approved doctors connected over Socket.IO (websocket) with their
consoles subscribed to the queue, spread over the nodes, all `away`; enough
patients with waiting cases (three each) to fill every doctor and keep a backlog.

1. Manual contention: every doctor runs `--takers` concurrent `queue:take`
   (take next) loops until the server answers `doctor_at_capacity`; prints
   assignments/s, take ack p50/p99, the refusals, and checks that no case was
   assigned twice and no doctor is over capacity.
2. Freed capacity, one at a time: every doctor turns `available` (all are full);
   then `--resolves` times a doctor resolves one case and we time from sending
   `consultation:resolve` to that doctor's console receiving
   `consultation:updated` (reason `assigned`) for its next case (auto pairing).
3. Freed capacity, all at once (`--bursts` times): every doctor resolves a case
   at the same moment; prints the same latency and the automatic assignments/s.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accounts import AccountMaker
from bench.cluster import (
    DEFAULT_PG_ADMIN_URL,
    DEFAULT_REDIS_URL,
    Cluster,
    server_tree_commit,
    workdir,
)
from bench.pairing_phases import (
    Console,
    PhaseResult,
    connect_consoles,
    freed_all_at_once,
    freed_one_at_a_time,
    manual_contention,
    sampled,
)
from bench.resources import load_average, postgres_backend_pids, raise_open_file_limit
from bench.tables import percentile, print_table
from tests.live_server import scratch_database


async def check_invariants(database_url: str, capacity: int) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        over = await conn.fetchval(
            """SELECT count(*) FROM (SELECT doctor_id FROM consultations WHERE state = 'active'
               GROUP BY doctor_id HAVING count(*) > $1) o""",
            capacity,
        )
        doubled = await conn.fetchval(
            """SELECT count(*) FROM (SELECT patient_id, doctor_id FROM consultations WHERE state = 'active'
               GROUP BY patient_id, doctor_id HAVING count(*) > 1) d"""
        )
        waiting = await conn.fetchval("SELECT count(*) FROM consultations WHERE state = 'waiting'")
    finally:
        await conn.close()
    return (
        f"doctors over capacity: {over}; patients with two active cases with one doctor: {doubled}; "
        f"cases still waiting: {waiting}"
    )


async def run(args: argparse.Namespace) -> None:
    slots = args.doctors * args.capacity
    cases = slots + args.resolves + args.bursts * args.doctors + args.doctors
    patients = math.ceil(cases / 3)
    with workdir("skindoc-pairing-") as tmp:
        async with scratch_database(args.pg_admin_url, "skindoc_bench_pairing") as database_url:
            cluster = Cluster(
                database_url, args.redis_url, tmp, extra_env={"SKINDOC_DOCTOR_CAPACITY": str(args.capacity)}
            )
            try:
                print(f"starting {args.nodes} node(s)…", flush=True)
                await cluster.start(args.nodes)
                await measure(cluster, database_url, args, patients, cases)
            finally:
                cluster.stop()


async def measure(cluster: Cluster, database_url: str, args: argparse.Namespace, patients: int, cases: int) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        maker = AccountMaker(cluster, session, secrets.token_hex(3))
        doctors = await maker.make_many("doctor", args.doctors)
        patient_accounts = await maker.make_many("patient", patients)
        limit = asyncio.Semaphore(16)

        async def open_case(i: int) -> None:
            async with limit:
                await maker.open_case(patient_accounts[i // 3], i)

        await asyncio.gather(*(open_case(i) for i in range(cases)))
        consoles = [Console(d, cluster.nodes[i % len(cluster.nodes)].url) for i, d in enumerate(doctors)]
        await connect_consoles(consoles, session)
        print(
            f"  {args.doctors} doctors (consoles subscribed), {patients} patients, {cases} waiting cases; "
            f"set up in {time.monotonic() - started:.0f} s",
            flush=True,
        )
        pids = [n.pid for n in cluster.nodes] + await postgres_backend_pids(database_url)
        node_pids = [n.pid for n in cluster.nodes]

        results = [await sampled(database_url, manual_contention(consoles, args.takers, pids))]
        checks = [await check_invariants(database_url, args.capacity)]
        await asyncio.gather(*(c.call("presence:set", {"availability": "available"}) for c in consoles))
        await asyncio.sleep(1)  # let the drains that availability starts finish (every doctor is full)
        results.append(await sampled(database_url, freed_one_at_a_time(consoles, args.resolves, pids)))
        for burst in range(1, args.bursts + 1):
            results.append(await sampled(database_url, freed_all_at_once(consoles, burst, pids)))
        checks.append(await check_invariants(database_url, args.capacity))
        snapshots = sum(c.snapshots for c in consoles)
        for console in consoles:
            await console.sio.disconnect()
    report(results, checks, node_pids, snapshots, args)


def report(
    results: list[PhaseResult], checks: list[str], node_pids: list[int], snapshots: int, args: argparse.Namespace
) -> None:
    rows = []
    for r in results:
        node_cpu = sum(r.cpu.used.get(pid, 0.0) for pid in node_pids)
        db_cpu = r.cpu.total() - node_cpu
        rows.append(
            [
                r.name,
                r.assignments,
                r.seconds,
                r.assignments / r.seconds if r.seconds else float("nan"),
                1000 * percentile(r.latencies, 50),
                1000 * percentile(r.latencies, 99),
                1000 * max(r.latencies, default=float("nan")),
                r.cpu.percent(node_cpu),
                r.cpu.percent(db_cpu),
                r.cpu.percent(r.cpu.self_used),
                ", ".join(f"{k} {v}" for k, v in sorted(r.refusals.items())) or "-",
            ]
        )
    print_table(
        f"Pairing: {args.nodes} node(s), {args.doctors} doctors of capacity {args.capacity}",
        [
            "phase",
            "assigned",
            "seconds",
            "assignments/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "nodes CPU %",
            "pg CPU %",
            "load-gen CPU %",
            "refusals",
        ],
        rows,
    )
    print(
        "  latency: manual = queue:take sent -> ack; freed = consultation:resolve sent -> the doctor's "
        "consultation:updated (assigned) for the next case"
    )
    for r in results:
        print(f"  {r.name}: {r.note}; PostgreSQL backends (mean number): {r.pg_waits}")
    print(f"  after manual phase: {checks[0]}")
    print(f"  at the end: {checks[1]}")
    print(f"  queue:snapshot pushes received by all consoles: {snapshots}; load average {load_average()}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1, help="server nodes (default 1)")
    parser.add_argument("--doctors", type=int, default=50, help="doctors (default 50)")
    parser.add_argument("--capacity", type=int, default=3, help="each doctor's capacity (default 3)")
    parser.add_argument("--takers", type=int, default=2, help="concurrent take-next loops per doctor (default 2)")
    parser.add_argument("--resolves", type=int, default=50, help="sequential resolve -> next case rounds")
    parser.add_argument("--bursts", type=int, default=2, help="rounds where every doctor resolves at once")
    parser.add_argument(
        "--pg-admin-url", default=DEFAULT_PG_ADMIN_URL, help="PostgreSQL URL where a scratch database may be created"
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis URL (default database 5)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    raise_open_file_limit(4096)
    print(f"servers run {server_tree_commit()}; load average {load_average()}", flush=True)
    asyncio.run(run(args))
