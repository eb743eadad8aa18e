"""Finding a Chromium for the browser tests the way a newcomer's machine has one.

In order: $SKINDOC_CHROMIUM ("none": skip them), Debian's /usr/bin/chromium (what .ci/run installs), other
distributions' names, then Playwright's own download (`.venv/bin/playwright install chromium`,
kept in $PLAYWRIGHT_BROWSERS_PATH or ~/.cache/ms-playwright). None found: the browser tests
skip, and conftest prints one loud line saying so (under CI=true they fail instead).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SKIP_REASON = (
    "No Chromium found: apt-get install chromium, or .venv/bin/playwright install chromium (or set SKINDOC_CHROMIUM)"
)


def _playwright_downloads() -> list[Path]:
    root = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    patterns = (
        "chromium-*/chrome-linux*/chrome",
        "chromium_headless_shell-*/chrome-*/headless_shell",
        "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
    )
    found = [path for pattern in patterns for path in root.glob(pattern)]
    return sorted(found, reverse=True)  # the newest revision first


def find_chromium() -> Path | None:
    configured = os.environ.get("SKINDOC_CHROMIUM", "")
    if configured == "none":
        return None  # run everything else: the browser tests skip (loudly)
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path("/usr/bin/chromium"),
        *(Path(p) for name in ("chromium-browser", "chromium", "google-chrome") if (p := shutil.which(name))),
    ]
    candidates += _playwright_downloads()
    return next((path for path in candidates if path.is_file() and os.access(path, os.X_OK)), None)


CHROMIUM = find_chromium()
