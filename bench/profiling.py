"""Sampling a server node's Python stacks with py-spy during a run, and the functions that appear most."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """Samples a node's Python stacks for `seconds` (collapsed stacks, for a flame graph or grep)."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def top_frames(collapsed: Path, top: int = 15) -> list[tuple[str, float]]:
    """Share of samples in which each function appears anywhere on the stack (inclusive time)."""
    totals: dict[str, int] = {}
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        for frame in set(stack.split(";")):
            totals[frame] = totals.get(frame, 0) + n
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [(frame, 100.0 * n / max(samples, 1)) for frame, n in ranked]
