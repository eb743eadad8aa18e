"""The `skindoc` command line carries the server's commands and the classifier's tools."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "ham10000" / "images"


def _skindoc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "web.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command():
    result = _skindoc("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "worker", "rescore", "admin", "audit", "train", "evaluate", "predict", "gan"):
        assert command in result.stdout


def test_predict_through_skindoc_scores_images_and_reports_a_broken_file(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    image = next(FIXTURES.glob("*.jpg"))
    result = _skindoc("predict", str(image), str(broken))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["image"] for row in rows] == [image.name, broken.name]
    assert rows[0]["urgency"] in ("urgent", "soon", "routine") and not rows[0]["error"]
    assert 0.0 <= float(rows[0]["p_malignant"]) <= 1.0
    assert rows[1]["error"]
    assert result.returncode == 1  # any failed file makes the command fail, after the rest ran
