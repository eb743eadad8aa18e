"""The `skindoc admin` and `skindoc audit` commands."""
from __future__ import annotations


def register(sub, run_with_stores) -> None:
    """Adds the admin and audit subcommands (filled in by the auth work)."""
