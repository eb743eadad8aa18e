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
import contextlib
import logging
import os
import random
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import (
    DEFAULT_PG_ADMIN_URL,
    DEFAULT_REDIS_URL,
    AccountMaker,
    Cluster,
    CpuMeter,
    Node,
    PgWaitSampler,
    free_port,
    load_average,
    percentile,
    postgres_backend_pids,
    print_table,
    raise_open_file_limit,
    redis_server_pid,
    rss_bytes,
    scratch_database,
    server_tree_commit,
    start_process,
    start_py_spy,
    top_frames,
    workdir,
)

# Above this many unacknowledged messages a client skips its turn: an overloaded
# server then shows up as a shortfall against the target rate, not as a queue
# growing without bound in the load generator.
MAX_IN_FLIGHT = 50


@dataclass
class Peer:
    """One load client: its socket, the consultation it chats in and what it saw."""
    index: int
    case_id: str
    token: str | None
    url: str
    sio: socketio.AsyncClient | None = None
    in_flight: int = 0


@dataclass
class LoadStats:
    window_start: float = 0.0
    window_end: float = 0.0
    sent: int = 0
    skipped: int = 0
    acked: int = 0
    ack_errors: dict[str, int] = field(default_factory=dict)
    ack_latency: list[float] = field(default_factory=list)
    delivered: int = 0
    delivery_latency: list[float] = field(default_factory=list)

    def in_window(self, t: float) -> bool:
        return self.window_start <= t < self.window_end


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


# ---- clients -------------------------------------------------------------------------------------

def new_client(session: aiohttp.ClientSession) -> socketio.AsyncClient:
    return socketio.AsyncClient(reconnection=False, http_session=session, handle_sigint=False, request_timeout=30)


async def connect_all(peers: list[Peer], session: aiohttp.ClientSession, concurrency: int,
                      on_message=None) -> tuple[int, dict[str, int]]:
    """Connects every peer over websocket only; returns how many connected and the failures by reason."""
    limit = asyncio.Semaphore(concurrency)
    failures: dict[str, int] = {}

    async def one(peer: Peer) -> bool:
        sio = new_client(session)
        if on_message is not None:
            sio.on("message", lambda data, peer=peer: on_message(peer, data))
        async with limit:
            try:
                await sio.connect(peer.url, transports=["websocket"], auth={"token": peer.token} if peer.token else None,
                                  wait_timeout=60)
            except Exception as exc:  # noqa: BLE001 — counted and reported, the run goes on
                reason = f"{type(exc).__name__}: {exc}"[:80]
                failures[reason] = failures.get(reason, 0) + 1
                return False
        peer.sio = sio
        return True

    results = await asyncio.gather(*(one(p) for p in peers))
    return sum(results), failures


async def disconnect_all(peers: list[Peer]) -> None:
    limit = asyncio.Semaphore(200)

    async def one(peer: Peer) -> None:
        if peer.sio is not None:
            async with limit:
                with contextlib.suppress(Exception):
                    await peer.sio.disconnect()

    await asyncio.gather(*(one(p) for p in peers))


def peer_index_of(message: dict) -> tuple[int, float] | None:
    head = str(message.get("body", "")).split(" ", 2)
    try:
        return int(head[0]), float(head[1])
    except (ValueError, IndexError):
        return None


class LoadGenerator:
    """Sends acknowledged messages from every peer and records acks and deliveries."""

    def __init__(self, peers: list[Peer], rate: float, body_chars: int) -> None:
        self.peers = [p for p in peers if p.sio is not None]
        self.rate = rate
        self.padding = "x" * max(0, body_chars - 24)
        self.stats = LoadStats()
        self._counter = 0

    def on_message(self, peer: Peer, data: dict) -> None:
        found = peer_index_of(data)
        if found is None or found[0] == peer.index:
            return  # our own message echoed by the room
        now = time.monotonic()
        if self.stats.in_window(now):
            self.stats.delivered += 1
            self.stats.delivery_latency.append(now - found[1])

    def _payload(self, peer: Peer) -> tuple[dict, float]:
        self._counter += 1
        sent_at = time.monotonic()
        return ({"consultation_id": peer.case_id, "client_msg_id": f"b{peer.index}-{self._counter}",
                 "body": f"{peer.index} {sent_at:.6f} {self.padding}"}, sent_at)

    def _record_ack(self, sent_at: float, ack) -> None:
        if not self.stats.in_window(sent_at):
            return
        if isinstance(ack, dict) and ack.get("ok"):
            self.stats.acked += 1
            self.stats.ack_latency.append(time.monotonic() - sent_at)
        else:
            code = ack.get("error", {}).get("code", "?") if isinstance(ack, dict) else str(ack)[:40]
            self.stats.ack_errors[code] = self.stats.ack_errors.get(code, 0) + 1

    async def run(self, warmup: float, seconds: float, meter: CpuMeter) -> None:
        start = time.monotonic()
        self.stats.window_start = start + warmup
        self.stats.window_end = self.stats.window_start + seconds
        senders = [self._open_loop(p, start) if self.rate > 0 else self._closed_loop(p) for p in self.peers]
        tasks = [asyncio.create_task(s) for s in senders]
        await asyncio.sleep(max(0.0, self.stats.window_start - time.monotonic()))
        meter.start()
        await asyncio.sleep(max(0.0, self.stats.window_end - time.monotonic()))
        meter.stop()
        await asyncio.gather(*tasks)
        # Give the last acknowledgements a moment to arrive before counting what is missing.
        deadline = time.monotonic() + 10
        while any(p.in_flight for p in self.peers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    async def _open_loop(self, peer: Peer, start: float) -> None:
        interval = len(self.peers) / self.rate
        next_at = start + random.uniform(0, interval)
        while next_at < self.stats.window_end:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if peer.in_flight >= MAX_IN_FLIGHT:
                if self.stats.in_window(next_at):
                    self.stats.skipped += 1
            else:
                await self._send(peer)
            next_at += interval

    async def _send(self, peer: Peer) -> None:
        payload, sent_at = self._payload(peer)
        if self.stats.in_window(sent_at):
            self.stats.sent += 1
        peer.in_flight += 1

        def acked(ack=None) -> None:
            peer.in_flight -= 1
            self._record_ack(sent_at, ack)

        try:
            await peer.sio.emit("message:send", payload, callback=acked)
        except Exception:  # noqa: BLE001 — a dropped socket: counted as an error ack
            peer.in_flight -= 1
            self._record_ack(sent_at, {"error": {"code": "send_failed"}})

    async def _closed_loop(self, peer: Peer) -> None:
        while time.monotonic() < self.stats.window_end:
            payload, sent_at = self._payload(peer)
            if self.stats.in_window(sent_at):
                self.stats.sent += 1
            peer.in_flight += 1
            try:
                ack = await peer.sio.call("message:send", payload, timeout=30)
            except Exception as exc:  # noqa: BLE001 — a timeout or a dropped socket
                ack = {"error": {"code": type(exc).__name__}}
            peer.in_flight -= 1
            self._record_ack(sent_at, ack)


# ---- runs ----------------------------------------------------------------------------------------

async def join_rooms(peers: list[Peer]) -> dict[str, int]:
    """`consultation:join` for every connected peer; a peer whose join fails is left out of the load (and counted)."""
    limit = asyncio.Semaphore(100)
    failures: dict[str, int] = {}

    async def one(peer: Peer) -> None:
        async with limit:
            try:
                ack = await peer.sio.call("consultation:join", {"consultation_id": peer.case_id}, timeout=60)
                reason = None if ack.get("ok") else f"refused: {ack.get('error', {}).get('code')}"
            except Exception as exc:  # noqa: BLE001 — a timeout or a dropped socket
                reason = type(exc).__name__
        if reason is not None:
            failures[reason] = failures.get(reason, 0) + 1
            with contextlib.suppress(Exception):
                await peer.sio.disconnect()
            peer.sio = None

    await asyncio.gather(*(one(p) for p in peers if p.sio is not None))
    return failures


async def measure_load(label: str, peers: list[Peer], node_pids: list[int], db_pids: list[int],
                       redis_pid: int | None, args: argparse.Namespace, database_url: str | None = None) -> RunResult:
    rss_before = sum(rss_bytes(pid) for pid in node_pids)
    generator = LoadGenerator(peers, args.rate, args.body_chars)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        connected, failures = await connect_all(peers, session, args.connect_concurrency, generator.on_message)
        for reason, count in failures.items():
            print(f"  {label}: {count} connections failed: {reason}", flush=True)
        for reason, count in (await join_rooms(peers)).items():
            print(f"  {label}: {count} consultation:join failed: {reason}", flush=True)
        connected = sum(1 for p in peers if p.sio is not None)
        generator.peers = [p for p in peers if p.sio is not None]
        rss_after = sum(rss_bytes(pid) for pid in node_pids)
        meter = CpuMeter([*node_pids, *db_pids, *([redis_pid] if redis_pid else [])])
        print(f"  {label}: {connected} clients connected; sending for {args.warmup:g} s warm-up + "
              f"{args.seconds:g} s measured", flush=True)
        sampler = PgWaitSampler(database_url) if database_url else None
        if sampler is not None:
            sampler.start()
        profiles = [args.py_spy / f"{label.split(',')[0].replace(' ', '-')}-{len(node_pids)}n-{i}.txt"
                    for i in range(len(node_pids))] if args.py_spy else []
        spies = [start_py_spy(pid, args.warmup + args.seconds, out) for pid, out in zip(node_pids, profiles)]
        await generator.run(args.warmup, args.seconds, meter)
        if sampler is not None:
            await sampler.stop()
        for spy in spies:
            spy.wait()
        await disconnect_all(peers)
    return RunResult(label, len(peers), connected, generator.stats, meter, node_pids, db_pids, redis_pid,
                     (rss_after - rss_before) / max(connected, 1), sampler.summary() if sampler else "", profiles)


async def server_load(args: argparse.Namespace) -> RunResult:
    pairs = args.clients // 2
    with workdir("skindoc-chat-load-") as tmp:
        async with scratch_database(args.pg_admin_url, "load") as database_url:
            cluster = Cluster(database_url, args.redis_url, tmp)
            try:
                print(f"starting {args.nodes} node(s)…", flush=True)
                await cluster.start(args.nodes)
                peers = await paired_peers(cluster, pairs)
                db_pids = await postgres_backend_pids(database_url)
                redis_pid = await redis_server_pid(args.redis_url)
                return await measure_load(f"skindoc, {args.nodes} node(s)", peers, [n.pid for n in cluster.nodes],
                                          db_pids, redis_pid, args, database_url)
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


@contextlib.asynccontextmanager
async def bare_relay(tmp: Path):
    port = free_port()
    node = await start_process([sys.executable, str(Path(__file__).with_name("bare_relay.py")), "--port", str(port)],
                               {}, tmp / "bare.log", port, "/readyz")
    try:
        yield node
    finally:
        node.stop()


async def bare_load(args: argparse.Namespace) -> RunResult:
    pairs = args.clients // 2
    with workdir("skindoc-bare-load-") as tmp:
        async with bare_relay(tmp) as node:
            peers = []
            for k in range(pairs):
                case_id = str(uuid.uuid4())
                peers += [Peer(2 * k, case_id, None, node.url), Peer(2 * k + 1, case_id, None, node.url)]
            return await measure_load("bare relay", peers, [node.pid], [], None, args)


# ---- idle connections -----------------------------------------------------------------------------

@dataclass
class IdleResult:
    label: str
    wanted: int
    connected: int
    failures: dict[str, int]
    connect_seconds: float
    rss_before: int
    rss_after: int
    own_rss_delta: int


async def hold_idle(label: str, node: Node, tokens: list[str | None], args: argparse.Namespace) -> IdleResult:
    peers = [Peer(i, "", tokens[i % len(tokens)], node.url) for i in range(args.idle)]
    rss_before = rss_bytes(node.pid)
    own_before = rss_bytes(os.getpid())
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        connected, failures = await connect_all(peers, session, args.connect_concurrency)
        took = time.monotonic() - started
        print(f"  {label}: {connected} idle clients connected in {took:.0f} s; holding {args.seconds:g} s",
              flush=True)
        await asyncio.sleep(args.seconds)
        rss_after = rss_bytes(node.pid)
        own_after = rss_bytes(os.getpid())
        await disconnect_all(peers)
    return IdleResult(label, args.idle, connected, failures, took, rss_before, rss_after, own_after - own_before)


async def server_idle(args: argparse.Namespace) -> IdleResult:
    with workdir("skindoc-idle-") as tmp:
        async with scratch_database(args.pg_admin_url, "idle") as database_url:
            cluster = Cluster(database_url, args.redis_url, tmp)
            try:
                await cluster.start(1)
                accounts = max(1, args.idle // args.connections_per_account)
                started = time.monotonic()
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                    maker = AccountMaker(cluster, session, secrets.token_hex(3))
                    patients = await maker.make_many("patient", accounts)
                print(f"  {accounts} patient accounts signed in in {time.monotonic() - started:.0f} s", flush=True)
                return await hold_idle("skindoc, 1 node", cluster.nodes[0], [p.token for p in patients], args)
            finally:
                cluster.stop()


async def bare_idle(args: argparse.Namespace) -> IdleResult:
    with workdir("skindoc-bare-idle-") as tmp:
        async with bare_relay(tmp) as node:
            return await hold_idle("bare relay", node, [None], args)


def print_idle(results: list[IdleResult], args: argparse.Namespace) -> None:
    rows = []
    for r in results:
        delta = r.rss_after - r.rss_before
        rows.append([r.label, r.connected, sum(r.failures.values()), r.connect_seconds, r.rss_before / 2**20,
                     r.rss_after / 2**20, delta / max(r.connected, 1) / 1024, r.own_rss_delta / max(r.connected, 1)
                     / 1024])
    print_table(f"Idle websocket connections ({args.idle} wanted, {args.connections_per_account} per account, "
                f"held {args.seconds:g} s)",
                ["target", "connected", "failed", "connect s", "server RSS before MiB", "after MiB",
                 "server KiB/conn", "load-gen KiB/conn"], rows)
    for r in results:
        for reason, count in r.failures.items():
            print(f"  {r.label}: {count} failed: {reason}")


# ---- report --------------------------------------------------------------------------------------

def print_load(results: list[RunResult], args: argparse.Namespace) -> None:
    rows = []
    for r in results:
        s, m = r.stats, r.meter
        node_cpu = sum(m.used.get(pid, 0.0) for pid in r.node_pids)
        db_cpu = sum(m.used.get(pid, 0.0) for pid in r.db_pids)
        redis_cpu = m.used.get(r.redis_pid, 0.0) if r.redis_pid else 0.0
        rows.append([r.label, r.connected, s.sent / args.seconds, s.delivered / args.seconds,
                     1000 * percentile(s.ack_latency, 50), 1000 * percentile(s.ack_latency, 99),
                     1000 * percentile(s.delivery_latency, 50), 1000 * percentile(s.delivery_latency, 99),
                     s.skipped + s.sent - s.acked,
                     m.percent(node_cpu), m.percent(db_cpu), m.percent(redis_cpu), m.percent(m.self_used),
                     1e6 * node_cpu / max(s.delivered, 1), r.rss_per_connection / 1024])
    rate = f"{args.rate:g} msg/s target" if args.rate > 0 else "closed loop (next send on ack)"
    print_table(f"Chat load: {args.clients} clients in pairs, {rate}, {args.seconds:g} s measured "
                f"(after {args.warmup:g} s warm-up), {args.body_chars}-char bodies",
                ["target", "clients", "sent/s", "delivered/s", "ack p50 ms", "ack p99 ms", "deliv p50 ms",
                 "deliv p99 ms", "shortfall", "nodes CPU %", "pg CPU %", "redis CPU %", "load-gen CPU %",
                 "node CPU µs/msg", "RSS KiB/conn"], rows)
    for r in results:
        if r.stats.ack_errors:
            print(f"  {r.label}: error acks {r.stats.ack_errors}")
        if r.pg_waits:
            print(f"  {r.label}: PostgreSQL backends, mean number in each state: {r.pg_waits}")
        for profile in r.profiles:
            if profile.exists():
                frames = ", ".join(f"{frame} {share:.0f}%" for frame, share in top_frames(profile, 25))
                print(f"  {r.label}: py-spy {profile}: {frames}")
    print("  CPU % is of one core over the measured window (100 = one core busy); shortfall = skipped turns "
          "(client over 50 unacked), error acks and missing acks.")
    if len(results) == 2:
        server, bare = results
        ratio = server.stats.delivered / max(bare.stats.delivered, 1)
        print(f"  persisted/bare delivered ratio: {ratio:.2f}")


async def main(args: argparse.Namespace) -> None:
    # engineio's client logs "packet queue is empty, aborting" for every socket we close;
    # failures that matter are counted and printed by this script.
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)
    limit = raise_open_file_limit(2 * max(args.clients, args.idle) + 1024)
    print(f"servers run {server_tree_commit()}; open-file limit {limit}; load average {load_average()}",
          flush=True)
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
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="target messages/s in total; 0 = closed loop, as fast as acks come (default 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds (idle: seconds held)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    parser.add_argument("--idle", type=int, default=0, help="hold this many idle authenticated clients instead")
    parser.add_argument("--connections-per-account", type=int, default=1,
                        help="idle mode: connections sharing one account (devices per user; default 1)")
    parser.add_argument("--target", choices=("server", "bare"), default="server",
                        help="bare: also run the same load against bench/bare_relay.py and print the ratio")
    parser.add_argument("--body-chars", type=int, default=100, help="message body length (default 100)")
    parser.add_argument("--connect-concurrency", type=int, default=50, help="connections opened at once")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="sample each node with py-spy during the run; collapsed stacks are written to DIR")
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN_URL,
                        help="PostgreSQL URL where a scratch database may be created")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis URL (default database 5)")
    args = parser.parse_args(argv)
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    if args.clients < 2 or args.clients % 2:
        parser.error("--clients must be an even number, at least 2")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
