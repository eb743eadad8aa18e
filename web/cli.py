"""The `skindoc` command line: serve, migrate, admin and audit commands, and the model's commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import uvloop
from aiohttp import web

from store.connections import Stores
from store.embedded import EmbeddedServers
from web.app import all_migrations, create_app, prepare_database, resolve_urls, triage_hooks
from web.logs import configure_logging
from web.settings import Settings

log = logging.getLogger("skindoc")


@contextlib.asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[Stores]:
    """Stores for a one-off command, with the same embedded fallback as the server."""
    embedded = EmbeddedServers(settings.data_dir)  # a running `skindoc serve`'s, or its own for the command
    stores = Stores()
    database_url, redis_url = resolve_urls(settings, embedded)
    try:
        database_url = await prepare_database(settings, database_url)
        await stores.open(database_url, redis_url, all_migrations(), pool_size=2)
        yield stores
    finally:
        await stores.close()
        embedded.stop()


def run_with_stores(settings: Settings, work: Callable[[Stores], Awaitable[int]]) -> int:
    async def main() -> int:
        # SIGTERM stops a command like Ctrl-C does: embedded servers it started are stopped on the way out.
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
        async with open_stores(settings) as stores:
            return await work(stores)

    try:
        return asyncio.run(main())
    except (asyncio.CancelledError, KeyboardInterrupt):
        return 130


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.host
    port = args.port or settings.port
    log.info("serving", extra={"host": host, "port": port})
    if settings.database_url is not None and not settings.dev_mode:
        problem = asyncio.run(_audit_log_rewriter(settings))
        if problem is not None:
            raise SystemExit(
                f"Refusing to serve: the database role of SKINDOC_DATABASE_URL could rewrite the audit "
                f"log ({problem}). Serve as a role without those rights and let "
                f"SKINDOC_DATABASE_OWNER_URL's role run the migrations (README, \"Security\"), or set "
                f"SKINDOC_DEV_MODE=true on a development machine."
            )
    # uvloop: the asyncio API on libuv; it cuts the loop's own share of each chat message (bench/README.md).
    web.run_app(create_app(settings), host=host, port=port, access_log=None, print=None, loop=uvloop.new_event_loop())
    return 0


async def _audit_log_rewriter(settings: Settings) -> str | None:
    """Why the serving role could rewrite the audit log, or None. A server that could would make the
    log worthless against whoever holds its credentials."""
    from auth.audit import runtime_role_problem

    await prepare_database(settings, settings.database_url)
    conn = await asyncpg.connect(settings.database_url)
    try:
        if await conn.fetchval("SELECT to_regclass('audit_log')") is None:
            return "the schema is not there yet, so it would create the audit log and own it"
        return await runtime_role_problem(conn)
    finally:
        await conn.close()


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def work(stores: Stores) -> int:
        rows = await stores.pool.fetch("SELECT domain, version, name FROM schema_migrations ORDER BY applied_at")
        for row in rows:
            print(f"{row['domain']:10} {row['version']:04d} {row['name']}")
        return 0

    return run_with_stores(settings, work)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from chat.realtime import QueueNotifier
    from triage.runner import WorkerSupervisor
    from web.worker_health import start_health_server

    if settings.database_url is None or settings.redis_url is None:
        # Embedded Redis belongs to one process: a separate worker would never see the server's jobs.
        raise SystemExit(
            "skindoc worker needs SKINDOC_DATABASE_URL and SKINDOC_REDIS_URL; "
            "without them `skindoc serve` runs the triage worker itself."
        )

    async def work(stores: Stores) -> int:
        # SIGTERM stops it like Ctrl-C: unacknowledged jobs stay pending for another worker.
        notifier = QueueNotifier.write_only(settings.redis_url, settings.chat.socketio_channel)
        supervisor = WorkerSupervisor(stores.pool, stores.redis, settings.triage, triage_hooks(settings, notifier))
        health = None
        if settings.worker_health_port:
            try:
                health = await start_health_server(
                    supervisor,
                    settings.triage.heartbeat_stale_s,
                    settings.worker_health_host,
                    settings.worker_health_port,
                )
            except OSError as exc:
                # Another worker on this host has the port: this one still works, unwatched.
                log.warning(
                    "worker health endpoint not served", extra={"error": str(exc), "port": settings.worker_health_port}
                )
        try:
            await supervisor.run()
        except asyncio.CancelledError:
            log.info("triage worker stopped")
        finally:
            await notifier.close()
            if health is not None:
                await health.cleanup()
        return 0

    return run_with_stores(settings, work)


def cmd_rescore(args: argparse.Namespace, settings: Settings) -> int:
    from chat.realtime import QueueNotifier
    from triage.runner import rescore_open

    async def work(stores: Stores) -> int:
        notifier = (
            QueueNotifier.write_only(settings.redis_url, settings.chat.socketio_channel) if settings.redis_url else None
        )
        try:
            classifier, changed = await rescore_open(
                stores.pool, args.model, settings.triage, triage_hooks(settings, notifier)
            )
        finally:
            if notifier is not None:
                await notifier.close()
        print(f"model {classifier.version}: {len(changed)} open consultations rescored")
        for summary in changed:
            print(f"{summary.consultation_id} {summary.urgency:8} {summary.p_malignant:.3f}")
        return 0

    return run_with_stores(settings, work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skindoc", description="SkinDoc teledermatology triage server.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web server (HTTP API, Socket.IO, browser apps)")
    serve.add_argument("--host", help="interface to listen on (default SKINDOC_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default SKINDOC_PORT)")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations and list them")
    migrate.set_defaults(func=cmd_migrate)

    worker = sub.add_parser("worker", help="run a triage worker: score queued photos in batches")
    worker.set_defaults(func=cmd_worker)

    rescore = sub.add_parser("rescore", help="score the photos of open consultations with another model version")
    rescore.add_argument("--model", type=Path, required=True, help="folder of the model's weights")
    rescore.set_defaults(func=cmd_rescore)

    _register_domain_commands(sub)
    return parser


# The classifier's and the photo gate's own tools (jax_models/cli.py, triage/gate_cli.py): no server settings.
MODEL_COMMANDS = ("train", "evaluate", "predict", "fit-ood", "gan", "gate")


def _register_domain_commands(sub: argparse._SubParsersAction) -> None:
    from auth import cli as auth_cli
    from chat.outcomes import cli as outcomes_cli
    from jax_models import cli as model_cli
    from triage import gate_cli

    auth_cli.register(sub, run_with_stores)
    outcomes_cli.register(sub, run_with_stores)
    model_cli.register(sub)
    gate_cli.register(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    if args.command in MODEL_COMMANDS:
        return args.func(args)
    return args.func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
