"""The `skindoc outcomes export` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auth.audit import AuditContext
from chat.outcomes.export import export_confirmed_cases
from store.connections import Stores


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("must be at least 0 and below 1")
    return value


def register(sub, run_with_stores) -> None:
    outcomes = sub.add_parser("outcomes", help="confirmed outcomes: export them for evaluation and calibration")
    outcomes_sub = outcomes.add_subparsers(dest="outcomes_command", required=True, metavar="ACTION")
    export = outcomes_sub.add_parser(
        "export",
        help="write the confirmed cases' photos and labels (labels.csv + images/) under pseudonyms",
        description="Write every resolved case with a histopathology result: its photos and what it was, in the "
        "training data's folder layout, under pseudonyms made for this export. One audit row per case. "
        "Feed the folder to `skindoc evaluate --outcomes`.",
    )
    export.add_argument("--out", type=Path, required=True, help="a new folder to write")
    export.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.3,
        help="share of cases held out as 'test' (the rest, 'val', may be calibrated on); default 0.3",
    )
    export.add_argument("--reason", required=True, help="why the export is made (kept in the audit log)")
    export.set_defaults(func=lambda args, settings: run_with_stores(settings, _export(args)))


def _export(args: argparse.Namespace):
    async def work(stores: Stores) -> int:
        ctx = AuditContext(actor=None, request_id=f"cli-outcomes-export: {args.reason}"[:200])
        try:
            summary = await export_confirmed_cases(stores.pool, args.out, test_fraction=args.test_fraction, ctx=ctx)
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"export {summary.export_id}: {summary.cases} confirmed cases ({summary.malignant_cases} malignant), "
            f"{summary.photos} photos -> {summary.folder} (val {summary.splits['val']}, "
            f"test {summary.splits['test']} photos)"
        )
        return 0

    return work
