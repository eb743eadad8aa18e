"""Starting a real `skindoc serve` process on a free port, for tests that need a whole server."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(env: Mapping[str, str], log_path: Path, *, port: int | None = None,
                 ready_timeout: float = 90.0) -> LiveServer:
    """Starts `skindoc serve` with the given SKINDOC_* settings and waits until /readyz says ready."""
    port = port or free_port()
    # Dev mode unless the caller says otherwise: a test server given a superuser's URL may serve with it.
    full_env = {**os.environ, "SKINDOC_DEV_MODE": "true", **env, "SKINDOC_HOST": "127.0.0.1",
                "SKINDOC_PORT": str(port)}
    log = open(log_path, "ab")
    process = subprocess.Popen([sys.executable, "-m", "web.cli", "serve"], env=full_env,
                               stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(process, port, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"skindoc serve exited with {process.returncode}; log: {log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"skindoc serve not ready in {ready_timeout}s; log: {log_path.read_text()[-3000:]}")
