"""Chat load: doctor/patient pairs exchanging acknowledged messages through `skindoc serve` (and the bare relay).

    python bench/chat_load.py --clients 1000 --rate 1000 --seconds 20 [--nodes 1|2] [--target bare]
    python bench/chat_load.py --idle 10000 [--target bare]

Load mode: N clients (N/2 consultations, one patient and one doctor each) send
messages at a target total rate (`--rate 0`: each client sends its next message
as soon as the last is acknowledged). It prints delivered messages/s (received by
the other party), ack latency (send to ack) and delivery latency (send to the
peer's `message` event) p50/p99, the CPU used by the nodes, their PostgreSQL
backends, Redis and this load generator, and the server RSS per connection.
With `--target bare` the same load runs against bench/bare_relay.py in the same
run and the ratio persisted/bare is printed.

Idle mode (`--idle N`): N authenticated websocket clients connect and stay idle;
it prints server RSS per connection.

Everything stays on 127.0.0.1, in a scratch PostgreSQL database (dropped at the
end) and Redis database 5 by default, with a pub/sub channel unique to the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accounts import AccountMaker
from bench.chat_clients import Peer, connect_all, disconnect_all, join_rooms
from bench.chat_idle import bare_idle, print_idle, server_idle
from bench.chat_traffic import LoadGenerator, LoadStats
from bench.cluster import (
    DEFAULT_PG_ADMIN_URL,
    DEFAULT_REDIS_URL,
    Cluster,
    bare_relay,
    server_tree_commit,
    workdir,
)
from bench.profiling import start_py_spy, top_frames
from bench.resources import (
    CpuMeter,
    PgWaitSampler,
    load_average,
    postgres_backend_pids,
    raise_open_file_limit,
    redis_server_pid,
    rss_bytes,
)
from bench.tables import percentile, print_table
from tests.live_server import scratch_database


@dataclass
class RunResult:
    label: str
    clients: int
    connected: int
    stats: LoadStats
    meter: CpuMeter
    node_pids: list[int]
    db_pids: list[int]
    redis_pid: int | None
    rss_per_connection: float
    pg_waits: str = ""
    profiles: list[Path] = field(default_factory=list)


async def measure_load(
    label: str,
    peers: list[Peer],
    node_pids: list[int],
    db_pids: list[int],
    redis_pid: int | None,
    args: argparse.Namespace,
    database_url: str | None = None,
) -> RunResult:
    rss_before = sum(rss_bytes(pid) for pid in node_pids)
    generator = LoadGenerator(peers, args.rate, args.body_chars)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        connected, failures = await connect_all(peers, session, args.connect_concurrency, generator.on_message)
        for reason, count in failures.items():
            print(f"  {label}: {count} connections failed: {reason}", flush=True)
        for reason, count in (await join_rooms(peers)).items():
            print(f"  {label}: {count} consultation:join failed: {reason}", flush=True)
        connected = sum(1 for p in peers if p.sio is not None)
        generator.peers = [p for p in peers if p.sio is not None]
        rss_after = sum(rss_bytes(pid) for pid in node_pids)
        meter = CpuMeter([*node_pids, *db_pids, *([redis_pid] if redis_pid else [])])
        print(
            f"  {label}: {connected} clients connected; sending for {args.warmup:g} s warm-up + "
            f"{args.seconds:g} s measured",
            flush=True,
        )
        sampler = PgWaitSampler(database_url) if database_url else None
        if sampler is not None:
            sampler.start()
        profiles = (
            [
                args.py_spy / f"{label.split(',')[0].replace(' ', '-')}-{len(node_pids)}n-{i}.txt"
                for i in range(len(node_pids))
            ]
            if args.py_spy
            else []
        )
        spies = [
            start_py_spy(pid, args.warmup + args.seconds, out) for pid, out in zip(node_pids, profiles, strict=True)
        ]
        await generator.run(args.warmup, args.seconds, meter)
        if sampler is not None:
            await sampler.stop()
        for spy in spies:
            spy.wait()
        await disconnect_all(peers)
    return RunResult(
        label,
        len(peers),
        connected,
        generator.stats,
        meter,
        node_pids,
        db_pids,
        redis_pid,
        (rss_after - rss_before) / max(connected, 1),
        sampler.summary() if sampler else "",
        profiles,
    )


async def server_load(args: argparse.Namespace) -> RunResult:
    pairs = args.clients // 2
    with workdir("skindoc-chat-load-") as tmp:
        async with scratch_database(args.pg_admin_url, "skindoc_bench_load") as database_url:
            cluster = Cluster(database_url, args.redis_url, tmp)
            try:
                print(f"starting {args.nodes} node(s)…", flush=True)
                await cluster.start(args.nodes)
                peers = await paired_peers(cluster, pairs)
                db_pids = await postgres_backend_pids(database_url)
                redis_pid = await redis_server_pid(args.redis_url)
                return await measure_load(
                    f"skindoc, {args.nodes} node(s)",
                    peers,
                    [n.pid for n in cluster.nodes],
                    db_pids,
                    redis_pid,
                    args,
                    database_url,
                )
            finally:
                cluster.stop()


async def paired_peers(cluster: Cluster, pairs: int) -> list[Peer]:
    """Accounts and one active consultation per pair; with two nodes half the pairs span both nodes."""
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        maker = AccountMaker(cluster, session, secrets.token_hex(3))
        patients = await maker.make_many("patient", pairs)
        doctors = await maker.make_many("doctor", pairs)
        limit = asyncio.Semaphore(16)

        async def pair(k: int) -> str:
            async with limit:
                case_id = await maker.open_case(patients[k], k)
                await maker.take_case(doctors[k], case_id, k)
                return case_id

        case_ids = await asyncio.gather(*(pair(k) for k in range(pairs)))
    print(f"  {pairs} pairs set up in {time.monotonic() - started:.0f} s", flush=True)
    nodes = cluster.nodes
    n = len(nodes)
    peers = []
    for k, case_id in enumerate(case_ids):
        # Patient on node k mod n, doctor on node (k div n) mod n: an even spread, and with
        # two nodes half of the consultations have their two people on different nodes.
        peers.append(Peer(2 * k, case_id, patients[k].token, nodes[k % n].url))
        peers.append(Peer(2 * k + 1, case_id, doctors[k].token, nodes[(k // n) % n].url))
    return peers


async def bare_load(args: argparse.Namespace) -> RunResult:
    pairs = args.clients // 2
    with workdir("skindoc-bare-load-") as tmp:
        async with bare_relay(tmp) as node:
            peers = []
            for k in range(pairs):
                case_id = str(uuid.uuid4())
                peers += [Peer(2 * k, case_id, None, node.url), Peer(2 * k + 1, case_id, None, node.url)]
            return await measure_load("bare relay", peers, [node.pid], [], None, args)


# ---- report --------------------------------------------------------------------------------------


def print_load(results: list[RunResult], args: argparse.Namespace) -> None:
    rows = []
    for r in results:
        s, m = r.stats, r.meter
        node_cpu = sum(m.used.get(pid, 0.0) for pid in r.node_pids)
        db_cpu = sum(m.used.get(pid, 0.0) for pid in r.db_pids)
        redis_cpu = m.used.get(r.redis_pid, 0.0) if r.redis_pid else 0.0
        rows.append(
            [
                r.label,
                r.connected,
                s.sent / args.seconds,
                s.delivered / args.seconds,
                1000 * percentile(s.ack_latency, 50),
                1000 * percentile(s.ack_latency, 99),
                1000 * percentile(s.delivery_latency, 50),
                1000 * percentile(s.delivery_latency, 99),
                s.skipped + s.sent - s.acked,
                m.percent(node_cpu),
                m.percent(db_cpu),
                m.percent(redis_cpu),
                m.percent(m.self_used),
                1e6 * node_cpu / max(s.delivered, 1),
                r.rss_per_connection / 1024,
            ]
        )
    rate = f"{args.rate:g} msg/s target" if args.rate > 0 else "closed loop (next send on ack)"
    print_table(
        f"Chat load: {args.clients} clients in pairs, {rate}, {args.seconds:g} s measured "
        f"(after {args.warmup:g} s warm-up), {args.body_chars}-char bodies",
        [
            "target",
            "clients",
            "sent/s",
            "delivered/s",
            "ack p50 ms",
            "ack p99 ms",
            "deliv p50 ms",
            "deliv p99 ms",
            "shortfall",
            "nodes CPU %",
            "pg CPU %",
            "redis CPU %",
            "load-gen CPU %",
            "node CPU µs/msg",
            "RSS KiB/conn",
        ],
        rows,
    )
    for r in results:
        if r.stats.ack_errors:
            print(f"  {r.label}: error acks {r.stats.ack_errors}")
        if r.pg_waits:
            print(f"  {r.label}: PostgreSQL backends, mean number in each state: {r.pg_waits}")
        for profile in r.profiles:
            if profile.exists():
                frames = ", ".join(f"{frame} {share:.0f}%" for frame, share in top_frames(profile, 25))
                print(f"  {r.label}: py-spy {profile}: {frames}")
    print(
        "  CPU % is of one core over the measured window (100 = one core busy); shortfall = skipped turns "
        "(client over 50 unacked), error acks and missing acks."
    )
    if len(results) == 2:
        server, bare = results
        ratio = server.stats.delivered / max(bare.stats.delivered, 1)
        print(f"  persisted/bare delivered ratio: {ratio:.2f}")


async def main(args: argparse.Namespace) -> None:
    # engineio's client logs "packet queue is empty, aborting" for every socket we close;
    # failures that matter are counted and printed by this script.
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)
    limit = raise_open_file_limit(2 * max(args.clients, args.idle) + 1024)
    print(f"servers run {server_tree_commit()}; open-file limit {limit}; load average {load_average()}", flush=True)
    if args.idle:
        results = [await server_idle(args)]
        if args.target == "bare":
            results.append(await bare_idle(args))
        print_idle(results, args)
    else:
        results = [await server_load(args)]
        if args.target == "bare":
            results.append(await bare_load(args))
        print_load(results, args)
    print(f"  load average after: {load_average()}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1, help="server nodes (default 1)")
    parser.add_argument("--clients", type=int, default=1000, help="connected clients, in pairs (default 1000)")
    parser.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="target messages/s in total; 0 = closed loop, as fast as acks come (default 1000)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds (idle: seconds held)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    parser.add_argument("--idle", type=int, default=0, help="hold this many idle authenticated clients instead")
    parser.add_argument(
        "--connections-per-account",
        type=int,
        default=1,
        help="idle mode: connections sharing one account (devices per user; default 1)",
    )
    parser.add_argument(
        "--target",
        choices=("server", "bare"),
        default="server",
        help="bare: also run the same load against bench/bare_relay.py and print the ratio",
    )
    parser.add_argument("--body-chars", type=int, default=100, help="message body length (default 100)")
    parser.add_argument("--connect-concurrency", type=int, default=50, help="connections opened at once")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="sample each node with py-spy during the run; collapsed stacks are written to DIR",
    )
    parser.add_argument(
        "--pg-admin-url", default=DEFAULT_PG_ADMIN_URL, help="PostgreSQL URL where a scratch database may be created"
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis URL (default database 5)")
    args = parser.parse_args(argv)
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    if args.clients < 2 or args.clients % 2:
        parser.error("--clients must be an even number, at least 2")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
