"""The chat benchmark's idle mode: many authenticated websocket clients that connect and stay idle, and the
server memory each one costs."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from dataclasses import dataclass

import aiohttp

from bench.accounts import AccountMaker
from bench.chat_clients import Peer, connect_all, disconnect_all
from bench.cluster import Cluster, bare_relay, workdir
from bench.resources import rss_bytes
from bench.tables import print_table
from tests.live_server import LiveServer, scratch_database


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


async def hold_idle(label: str, node: LiveServer, tokens: list[str | None], args: argparse.Namespace) -> IdleResult:
    peers = [Peer(i, "", tokens[i % len(tokens)], node.url) for i in range(args.idle)]
    rss_before = rss_bytes(node.pid)
    own_before = rss_bytes(os.getpid())
    started = time.monotonic()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        connected, failures = await connect_all(peers, session, args.connect_concurrency)
        took = time.monotonic() - started
        print(f"  {label}: {connected} idle clients connected in {took:.0f} s; holding {args.seconds:g} s", flush=True)
        await asyncio.sleep(args.seconds)
        rss_after = rss_bytes(node.pid)
        own_after = rss_bytes(os.getpid())
        await disconnect_all(peers)
    return IdleResult(label, args.idle, connected, failures, took, rss_before, rss_after, own_after - own_before)


async def server_idle(args: argparse.Namespace) -> IdleResult:
    with workdir("skindoc-idle-") as tmp:
        async with scratch_database(args.pg_admin_url, "skindoc_bench_idle") as database_url:
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
        rows.append(
            [
                r.label,
                r.connected,
                sum(r.failures.values()),
                r.connect_seconds,
                r.rss_before / 2**20,
                r.rss_after / 2**20,
                delta / max(r.connected, 1) / 1024,
                r.own_rss_delta / max(r.connected, 1) / 1024,
            ]
        )
    print_table(
        f"Idle websocket connections ({args.idle} wanted, {args.connections_per_account} per account, "
        f"held {args.seconds:g} s)",
        [
            "target",
            "connected",
            "failed",
            "connect s",
            "server RSS before MiB",
            "after MiB",
            "server KiB/conn",
            "load-gen KiB/conn",
        ],
        rows,
    )
    for r in results:
        for reason, count in r.failures.items():
            print(f"  {r.label}: {count} failed: {reason}")
