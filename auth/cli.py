"""The `skindoc admin` and `skindoc audit` commands."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime, timedelta

from auth import build_service
from auth.audit import AuditContext
from auth.audit_chain import load_audit_key
from auth.routes import MAX_NAME_LENGTH, normalise_email, unshowable
from store.connections import Stores
from store.errors import DomainError


def register(sub, run_with_stores) -> None:
    """Adds the admin and audit subcommands."""
    admin = sub.add_parser("admin", help="manage accounts (create the first admin, approve doctors)")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")

    create = admin_sub.add_parser(
        "create",
        help="create an admin account",
        description="Create an admin account. The password is asked for twice on a "
        "terminal, or read from standard input with --password-stdin; "
        "there is no default password.",
    )
    create.add_argument("--email", required=True, help="the admin's email address (their sign-in name)")
    create.add_argument("--name", required=True, help="the name shown to other users")
    create.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    create.set_defaults(func=lambda args, settings: run_with_stores(settings, _create_admin(args, settings)))

    approve = admin_sub.add_parser(
        "approve",
        help="approve a pending doctor",
        description="Approve a self-registered doctor so they can do clinical work.",
    )
    approve.add_argument("doctor", metavar="EMAIL|ID", help="the doctor's email address or user id")
    approve.set_defaults(func=lambda args, settings: run_with_stores(settings, _approve_doctor(args, settings)))

    audit = sub.add_parser("audit", help="check the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser(
        "verify",
        help="check the audit log's hash chain and name the first broken row",
        description="Recompute every audit row's hash and its link to the previous row, "
        "and check every signed checkpoint with the audit key "
        "(SKINDOC_AUDIT_KEY or the data folder's key file). Exit status 0: "
        "intact; 1: the first broken row is printed.",
    )
    verify.set_defaults(func=lambda args, settings: run_with_stores(settings, _verify_audit(settings)))


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("No terminal to ask for the password on: pipe it in with --password-stdin.")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise SystemExit("The passwords do not match; nothing was created.")
    return first


def _create_admin(args: argparse.Namespace, settings):
    async def work(stores: Stores) -> int:
        email = normalise_email(args.email)
        name = args.name.strip()
        if email is None:
            return _fail(f"{args.email!r} is not an email address.")
        if not name or len(name) > MAX_NAME_LENGTH:
            return _fail(f"The name must be 1 to {MAX_NAME_LENGTH} characters.")
        if unshowable(name):
            return _fail(f"The name must not contain {unshowable(name)}.")
        password = _read_password(args)
        try:
            user = await build_service(stores, settings).create_admin(email=email, name=name, password=password)
        except DomainError as exc:
            return _fail(exc.detail)
        print(f"admin created: {user.email} ({user.id})")
        return 0

    return work


def _approve_doctor(args: argparse.Namespace, settings):
    async def work(stores: Stores) -> int:
        service = build_service(stores, settings)
        user = await service.find_user(args.doctor)
        if user is None:
            return _fail(f"No account matches {args.doctor!r}.")
        try:
            user = await service.approve_doctor(user.id, ctx=AuditContext(None, request_id="cli"))
        except DomainError as exc:
            return _fail(exc.detail)
        print(f"doctor approved: {user.email} ({user.id})")
        return 0

    return work


def _verify_audit(settings):
    async def work(stores: Stores) -> int:
        key = load_audit_key(settings.auth, settings.data_dir, create=False)
        result = await build_service(stores, settings).audit_log.verify_chain(key)
        if result.broken is not None:
            print(f"audit chain broken at row {result.broken.id}: {result.broken.reason}")
            return 1
        print(
            f"audit chain intact: {result.checked} rows checked, {result.checkpoints} signed checkpoints, "
            f"{result.unsigned} rows after the last checkpoint"
        )
        # Servers sign every interval: rows left unsigned much longer mean checkpoints were removed
        # (or no server is running to sign them).
        patience = timedelta(seconds=3 * settings.auth.audit_checkpoint_interval_s + 60)
        if result.first_unsigned_at is not None and datetime.now(UTC) - result.first_unsigned_at > patience:
            print(
                f"audit chain not vouched for: rows since {result.first_unsigned_at.isoformat()} have no signed "
                "checkpoint (checkpoints removed, or no server has been signing them)"
            )
            return 1
        return 0

    return work


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
