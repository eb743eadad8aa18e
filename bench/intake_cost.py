"""Photo intake's CPU time per photo, in process: the work the server does on an upload before storing it
(decode, checks, EXIF orientation, sRGB, re-encode, thumbnail, quality measures: triage.intake), for one
source tree or several timed in turns, with a check that every tree stores the same bytes and gives the
same quality verdict.

    .venv/bin/python bench/intake_cost.py
    git worktree add /tmp/before main
    .venv/bin/python bench/intake_cost.py --tree /tmp/before --tree . --rounds 5

Each tree runs in its own process (`python bench/intake_cost.py --measure TREE`) on the same photos:
browser uploads (1280x960, what the patient page sends) and phone originals (4032x3024, EXIF-rotated,
with and without an embedded colour profile that is not sRGB). A round times every photo in every tree, one tree after
the other; the figure is the median over rounds of each round's mean CPU milliseconds per photo.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PHONE_SIZE = (4032, 3024)


def photo_set() -> dict[str, bytes]:
    sys.path.insert(0, str(BENCH.parent))
    from PIL import Image

    from bench.photos import photo_bytes
    from tests.test_triage_support import gamma_profile

    exif = Image.Exif()
    exif[0x0112] = 6  # the phone was held upright: rotate 90° on display
    photos = {f"browser 1280x960 #{i}": photo_bytes(i, i) for i in range(6)}
    photos["phone 4032x3024, EXIF rotated"] = photo_bytes(7, 7, PHONE_SIZE, exif=exif.tobytes())
    photos["phone 4032x3024, EXIF rotated, colour profile"] = photo_bytes(
        8, 8, PHONE_SIZE, exif=exif.tobytes(), icc_profile=gamma_profile()
    )
    return photos


def measure(photo_dir: Path, repeats: int) -> dict:
    """In the tree this process imports `triage` from: CPU ms of each photo's intake and what it produced."""
    from triage import intake
    from triage.config import TriageConfig

    config = TriageConfig()
    out = {}
    for path in sorted(photo_dir.glob("*.jpg")):
        upload = [(path.name, path.read_bytes())]
        intake._normalise_all(upload, config)  # warm-up: first-use imports and caches
        times = []
        for _ in range(repeats):
            started = time.process_time()
            [(photo, quality)] = intake._normalise_all(upload, config)
            times.append((time.process_time() - started) * 1000)
        out[path.stem] = {
            "ms": statistics.mean(times),
            "stored": photo.sha256,
            "thumbnail": hashlib.sha256(photo.thumbnail).hexdigest(),
            "size": [photo.width, photo.height],
            "warnings": list(photo.warnings),
            "measures": quality.measures,
            "problems": list(quality.problems),
        }
    return out


def run_tree(tree: Path, photo_dir: Path, repeats: int) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--measure",
            str(tree),
            "--photos",
            str(photo_dir),
            "--repeats",
            str(repeats),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{tree}: {result.stderr[-3000:]}")
    return json.loads(result.stdout)


def compare(trees: list[Path], rounds: list[dict[Path, dict]], names: dict[str, str]) -> bool:
    """Prints the table; returns whether every tree produced the same stored bytes and quality verdicts."""
    first = rounds[0]
    same = True
    header = f"{'photo':48s}" + "".join(f"{str(tree)[-28:]:>30s}" for tree in trees)
    print(f"\nIntake CPU ms per photo, median over {len(rounds)} rounds\n{header}")
    for stem, name in names.items():
        cells = "".join(f"{statistics.median(r[tree][stem]['ms'] for r in rounds):30.2f}" for tree in trees)
        print(f"{name:48s}{cells}")
        outputs = [{k: v for k, v in first[tree][stem].items() if k != "ms"} for tree in trees]
        if any(output != outputs[0] for output in outputs[1:]):
            same = False
            print(f"  DIFFERENT RESULTS: {json.dumps(outputs)}")
    for group in ("browser", "phone"):
        stems = [stem for stem, name in names.items() if name.startswith(group)]
        cells = "".join(
            f"{statistics.median(statistics.mean(r[tree][s]['ms'] for s in stems) for r in rounds):30.2f}"
            for tree in trees
        )
        print(f"{'mean, ' + group + ' photos':48s}{cells}")
    print(
        "stored image, thumbnail, size, warnings, quality measures and problems: "
        + ("identical in every tree" if same else "DIFFERENT (see above)")
    )
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tree", type=Path, action="append", help="a source tree to time (repeatable; default: this one)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every tree (default 3)")
    parser.add_argument("--repeats", type=int, default=10, help="timed intakes of each photo per round (default 10)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--photos", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        sys.path.insert(0, str(args.measure.resolve()))
        print(json.dumps(measure(args.photos, args.repeats)))
        return
    trees = [tree.resolve() for tree in (args.tree or [BENCH.parent])]
    with tempfile.TemporaryDirectory(prefix="skindoc-intake-cost-") as folder:
        names = {}
        for i, (name, data) in enumerate(photo_set().items()):
            names[f"{i:02d}"] = name
            (Path(folder) / f"{i:02d}.jpg").write_bytes(data)
        rounds = [{tree: run_tree(tree, Path(folder), args.repeats) for tree in trees} for _ in range(args.rounds)]
    if not compare(trees, rounds, names):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
