"""Photo intake's peak memory: the worst uploads the server accepts, each on a fresh `skindoc serve`.

For each file the script starts one server, uploads a small photo to warm it up, reads the
process's peak resident memory (VmHWM in /proc), uploads the file, and reads the peak again:
the difference is what that upload cost at its worst moment. The files are at the default caps
(SKINDOC_TRIAGE_MAX_PIXELS, the bytes-per-pixel rule, the JPEG side limit), flat-coloured so they
fit the upload cap; decoding cost depends on the pixels, not on the file size.

    .venv/bin/python bench/intake_memory.py
    .venv/bin/python bench/intake_memory.py --max-pixels 24000000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accounts import AccountMaker
from bench.cluster import DEFAULT_PG_ADMIN_URL, DEFAULT_REDIS_URL, Cluster, workdir
from bench.tables import print_table
from tests.live_server import scratch_database
from triage.config import TriageConfig

MB = 1024 * 1024


def peak_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc")


def worst_files(max_pixels: int) -> dict[str, bytes]:
    """The heaviest accepted file of each kind: at the pixel cap for its bytes per pixel."""

    def side_pair(pixels: int) -> tuple[int, int]:
        width = int(math.sqrt(pixels * 4 / 3))
        return width, pixels // width

    def save(image: Image.Image, fmt: str, **options) -> bytes:
        out = io.BytesIO()
        image.save(out, format=fmt, **options)
        return out.getvalue()

    rgb_size, four_byte_size = side_pair(max_pixels), side_pair(max_pixels * 3 // 4)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: the orientation is applied, a second full-size image
    grey16 = np.full(rgb_size[::-1], 40000, dtype=np.uint16)
    return {
        "RGB JPEG, EXIF rotated": save(
            Image.new("RGB", rgb_size, (200, 150, 120)), "JPEG", quality=90, exif=exif.tobytes()
        ),
        "RGB PNG": save(Image.new("RGB", rgb_size, (200, 150, 120)), "PNG"),
        "16-bit grey PNG": save(Image.fromarray(grey16), "PNG"),
        "RGBA PNG (4 B/px: 3/4 of the pixels)": save(Image.new("RGBA", four_byte_size, (200, 150, 120, 128)), "PNG"),
    }


async def measure(name: str, photo: bytes, args: argparse.Namespace, cap: int) -> list[object]:
    async with scratch_database(args.pg_admin_url, "skindoc_bench_intake") as database_url:
        with workdir("skindoc-intake-") as folder:
            cluster = Cluster(database_url, args.redis_url, folder, extra_env={"SKINDOC_TRIAGE_MAX_PIXELS": str(cap)})
            await cluster.start(1)
            try:
                async with aiohttp.ClientSession() as session:
                    maker = AccountMaker(cluster, session, f"intake{int(time.time())}")
                    patient = await maker.make("patient", 0)
                    case = await maker.open_case(patient, 0)
                    small = io.BytesIO()
                    Image.new("RGB", (900, 700), (200, 150, 120)).save(small, format="JPEG")
                    await upload(session, cluster, patient, case, small.getvalue())
                    pid = cluster.nodes[0].pid
                    before = peak_rss_bytes(pid)
                    started = time.perf_counter()
                    status = await upload(session, cluster, patient, case, photo)
                    seconds = time.perf_counter() - started
                    after = peak_rss_bytes(pid)
            finally:
                cluster.stop()
    return [
        name,
        f"{len(photo) / 1024:.0f} kB",
        status,
        f"{seconds:.1f}",
        f"{before / MB:.0f}",
        f"{after / MB:.0f}",
        f"{(after - before) / MB:.0f}",
    ]


async def upload(session: aiohttp.ClientSession, cluster: Cluster, patient, case: str, photo: bytes) -> int:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("body_site", "arm")
    form.add_field("photo", photo, filename="photo", content_type="application/octet-stream")
    url = f"{cluster.nodes[0].url}/api/v1/consultations/{case}/photos"
    async with session.post(url, data=form, headers=patient.headers) as response:
        await response.read()
        return response.status


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=TriageConfig.max_pixels,
        help="the server's SKINDOC_TRIAGE_MAX_PIXELS (default: the setting's default)",
    )
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    rows = []
    for name, photo in worst_files(args.max_pixels).items():
        rows.append(await measure(name, photo, args, args.max_pixels))
    print_table(
        f"Peak server memory per upload (SKINDOC_TRIAGE_MAX_PIXELS={args.max_pixels})",
        ["file", "size", "status", "seconds", "peak before MB", "peak after MB", "upload's peak MB"],
        rows,
    )


if __name__ == "__main__":
    asyncio.run(main())
