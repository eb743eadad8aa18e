"""Secrets kept in files in the data folder: created once, mode 0600, by whichever process starts first."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def create_or_read(path: Path, make: Callable[[], bytes], complete: Callable[[bytes], bool]) -> bytes:
    """The file's contents, creating it with `make()` when it does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: when two processes start together, exactly one writes the file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_complete(path, complete)
    data = make()
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return data


def _read_complete(path: Path, complete: Callable[[bytes], bool]) -> bytes:
    for _ in range(50):  # the creating process may still be writing it
        data = path.read_bytes()
        if complete(data):
            return data
        time.sleep(0.1)
    raise SystemExit(f"Key file {path} is incomplete; remove it to create a new key.")
