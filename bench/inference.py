"""Inference throughput and latency of the shipped classifier through the serving path.

    python bench/inference.py [--weights DIR] [--seconds 3] [--json OUT]

Measures `Classifier.predict` (preprocessing of decoded PIL photos + the
jitted model) at each batch bucket, single-image latency (median, p99), and
the compilation count before and after the runs (it must not grow after warm-up).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax

from jax_models.serving import load_classifier

FIXTURES = Path(__file__).resolve().parents[1] / 'tests' / 'fixtures' / 'ham10000' / 'images'


def photos(n: int) -> list[Image.Image]:
    files = sorted(FIXTURES.glob('*.jpg'))
    if files:
        base = [Image.open(f).convert('RGB') for f in files]
    else:
        rng = np.random.default_rng(0)
        base = [Image.fromarray(rng.integers(0, 255, (128, 171, 3), np.uint8))]
    return [base[i % len(base)] for i in range(n)]


def throughput(clf, batch: int, seconds: float) -> dict:
    images = photos(batch)
    clf.predict(images)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        clf.predict(images)
        runs += 1
    elapsed = time.perf_counter() - started
    model_only = np.stack([np.zeros((clf.image_size, clf.image_size, 3), np.float32)] * batch)
    m_runs, m_started = 0, time.perf_counter()
    while time.perf_counter() - m_started < seconds / 2:
        clf.predict_arrays(model_only)
        m_runs += 1
    m_elapsed = time.perf_counter() - m_started
    return {
        'batch': batch,
        'images_per_second': runs * batch / elapsed,
        'model_only_images_per_second': m_runs * batch / m_elapsed,
    }


def latency(clf, n: int) -> dict:
    image = photos(1)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        clf.predict(image)
        times.append((time.perf_counter() - t) * 1e3)
    return {'n': n, 'median_ms': float(np.median(times)), 'p99_ms': float(np.percentile(times, 99))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', default=None, help='checkpoint folder (default: shipped)')
    parser.add_argument('--seconds', type=float, default=3.0, help='time per batch size')
    parser.add_argument('--latency-runs', type=int, default=500)
    parser.add_argument('--json', default=None, help='also write the figures here')
    args = parser.parse_args(argv)

    jax.devices()  # backend start-up is not the model's loading time
    t = time.perf_counter()
    clf = load_classifier(args.weights)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    clf.warmup()
    warmup_s = time.perf_counter() - t
    after_warmup = clf.compile_count
    device = jax.devices()[0]
    print(
        f'model {clf.version} on {device.platform} ({device.device_kind}), '
        f'input {clf.image_size} px; load {load_s * 1e3:.0f} ms, warm-up {warmup_s:.1f} s, '
        f'{after_warmup} compilations'
    )
    rows = []
    print(f'{"batch":>6} {"images/s (predict)":>19} {"images/s (model only)":>22}')
    for b in clf.batch_sizes:
        r = throughput(clf, b, args.seconds)
        rows.append(r)
        print(f'{b:>6} {r["images_per_second"]:>19.0f} {r["model_only_images_per_second"]:>22.0f}')
    lat = latency(clf, args.latency_runs)
    print(f'single image: median {lat["median_ms"]:.2f} ms, p99 {lat["p99_ms"]:.2f} ms ({lat["n"]} runs)')
    print(f'compilations: {after_warmup} after warm-up, {clf.compile_count} at the end')
    result = {
        'model_version': clf.version,
        'platform': device.platform,
        'device': device.device_kind,
        'load_ms': load_s * 1e3,
        'warmup_s': warmup_s,
        'throughput': rows,
        'latency': lat,
        'compiles_after_warmup': after_warmup,
        'compiles_at_end': clf.compile_count,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + '\n')
    return 0 if clf.compile_count == after_warmup else 1


if __name__ == '__main__':
    sys.exit(main())
