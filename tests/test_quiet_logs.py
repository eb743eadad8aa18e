"""Under a stream of malformed Socket.IO frames and photos with broken EXIF blocks, the server's log stays
JSON and short: one line per kind of trouble, not a traceback (or a raw stderr line) per frame or upload."""

from __future__ import annotations

import collections
import json
import struct

import aiohttp

from tests.chaos_support import open_case
from tests.test_triage_support import jpeg

GARBAGE_FRAMES = ["garbage", "4", "42[", '42["message:send"', "40/nope,", '451-["x",{"_placeholder":true,"num":5}]']


def jpeg_with_broken_exif(seed: int) -> bytes:
    """A valid JPEG whose EXIF block promises more data than it holds (Pillow warns while reading it)."""
    data = jpeg(seed=seed)
    tiff = b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 5) + struct.pack("<HHII", 0x010F, 2, 400, 1000)
    payload = b"Exif\x00\x00" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


async def test_malformed_frames_and_exif_are_logged_once_as_json(live_server):
    async with aiohttp.ClientSession() as session:
        for round_ in range(3):
            for frame in GARBAGE_FRAMES:
                async with session.ws_connect(f"{live_server.url}/socket.io/?EIO=4&transport=websocket") as ws:
                    await ws.receive(timeout=5)
                    await ws.send_str(frame)
                    await ws.send_bytes(b"\x00\xff\xfe" * (round_ + 1))
        patient, case_id = await open_case(session, live_server.url)
        for seed in range(4):
            form = aiohttp.FormData(default_to_multipart=True)
            form.add_field("body_site", "arm")
            form.add_field("photo", jpeg_with_broken_exif(seed), filename="spot.jpg", content_type="image/jpeg")
            async with session.post(
                f"{live_server.url}/api/v1/consultations/{case_id}/photos", data=form, headers=patient
            ) as r:
                assert r.status == 201, await r.text()
    live_server.stop()

    lines = live_server.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is a JSON object: no raw stderr
    assert any(r["logger"] == "py.warnings" and "EXIF" in r["message"] for r in records), "warnings reach the log"
    noisy = collections.Counter(
        (r["logger"], r["message"])
        for r in records
        if r["level"] in ("warning", "error") and r["logger"] != "py.warnings"
    )
    assert all(n == 1 for n in noisy.values()), noisy
    per_source = collections.Counter((r["message"], r.get("source")) for r in records if r["logger"] == "py.warnings")
    assert all(n == 1 for n in per_source.values()), per_source
    assert not [r for r in records if "exception" in r], "no traceback for the client's malformed input"
