"""jax_models.serving: the shipped weights, the batch buckets, the bands, explanations."""

import csv
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jax_models import bands, checkpoint
from jax_models.serving import Prediction, load_classifier

FIXTURES = Path(__file__).parent / 'fixtures' / 'ham10000'
HAM_DATA = Path(os.environ.get('SKINDOC_HAM10000', Path(__file__).parents[2] / 'shared' / 'data' / 'ham10000'))

# Clear cases among the fixtures: the shipped model's top class is the label.
CLEAR = {
    'ISIC_0028747': 'bcc',
    'ISIC_0024443': 'bcc',
    'ISIC_0024318': 'df',
    'ISIC_0025223': 'df',
    'ISIC_0034253': 'mel',
    'ISIC_0028434': 'nv',
    'ISIC_0030516': 'nv',
    'ISIC_0025829': 'nv',
    'ISIC_0032057': 'vasc',
    'ISIC_0026336': 'vasc',
}


def fixture_labels():
    with open(FIXTURES / 'labels.csv', newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def clf():
    c = load_classifier()
    c.warmup()
    return c


def test_metadata_carries_everything_needed():
    meta = checkpoint.read_metadata(checkpoint.SHIPPED_DIR)
    for key in (
        'version',
        'image_size',
        'class_names',
        'temperature',
        'thresholds',
        'logit_bias',
        'malignant_classes',
        'model',
        'data',
        'training',
    ):
        assert key in meta, key
    assert meta['class_names'] == ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc']
    assert (checkpoint.SHIPPED_DIR / 'LICENSE.md').exists()
    assert 'CC BY-NC-SA 4.0' in (checkpoint.SHIPPED_DIR / 'LICENSE.md').read_text()


def test_loading_is_quick():
    load_classifier()  # imports and first-use costs out of the way
    started = time.perf_counter()
    load_classifier()
    assert time.perf_counter() - started < 2.0  # about 0.3 s on an idle 2-core machine


def test_interface(clf):
    assert len(clf.version) == 16 and int(clf.version, 16) >= 0
    assert clf.class_names == ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc']
    assert set(clf.thresholds) == {'urgent', 'soon'}
    assert 0 < clf.thresholds['soon'] < clf.thresholds['urgent'] < 1
    assert clf.batch_sizes == (1, 8, 32, 64)


def test_fixture_predictions(clf):
    rows = fixture_labels()
    preds = clf.predict([Image.open(FIXTURES / 'images' / f"{r['image_id']}.jpg") for r in rows])
    assert len(preds) == len(rows)
    for row, p in zip(rows, preds, strict=True):
        assert isinstance(p, Prediction)
        assert abs(sum(p.probabilities.values()) - 1.0) < 1e-5
        assert p.p_malignant == pytest.approx(sum(p.probabilities[c] for c in ('akiec', 'bcc', 'mel')), abs=1e-6)
        assert p.dx == max(p.probabilities, key=p.probabilities.get)
        assert p.urgency == bands.from_thresholds(clf.thresholds).band_for(p.p_malignant)
        assert p.model_version == clf.version
        if row['image_id'] in CLEAR:
            assert p.dx == CLEAR[row['image_id']], row['image_id']
    # Clear malignant cases are flagged urgent, clear nevi are not.
    by_id = {r['image_id']: p for r, p in zip(rows, preds, strict=True)}
    for image_id in ('ISIC_0028747', 'ISIC_0024443', 'ISIC_0034253'):
        assert by_id[image_id].urgency == 'urgent'
    for image_id in ('ISIC_0028434', 'ISIC_0030516'):
        assert by_id[image_id].urgency == 'routine'
    assert by_id['ISIC_0029505'].urgency == 'soon'  # a medium-risk keratosis


def test_compile_count_fixed_after_warmup(clf):
    compiled = clf.compile_count
    assert compiled == len(clf.batch_sizes) + 1  # every bucket and the explanation
    image = Image.open(min((FIXTURES / 'images').glob('*.jpg')))
    for n in (1, 2, 7, 8, 9, 33, 64, 65, 130):
        assert len(clf.predict([image] * n)) == n
    clf.explain(image)
    assert clf.compile_count == compiled


def test_same_answer_in_any_batch_and_from_threads(clf):
    images = [Image.open(p) for p in sorted((FIXTURES / 'images').glob('*.jpg'))]
    alone = [clf.predict([im])[0].p_malignant for im in images]
    together = [p.p_malignant for p in clf.predict(images)]
    np.testing.assert_allclose(alone, together, atol=1e-5)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda im: clf.predict([im])[0].p_malignant, images * 3))
    np.testing.assert_allclose(results, alone * 3, atol=1e-5)


def test_empty_batch(clf):
    assert clf.predict([]) == []


def test_explain_returns_a_png_overlay(clf):
    image = Image.open(FIXTURES / 'images' / 'ISIC_0034253.jpg')
    png = clf.explain(image)
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    overlay = Image.open(io.BytesIO(png))
    assert overlay.mode == 'RGB'
    assert overlay.size[0] == 384 and abs(overlay.size[1] - 384 * 128 / 171) <= 1


def test_urgency_bands():
    b = bands.from_thresholds({'urgent': 0.3, 'soon': 0.1})
    assert b.band_for(0.9) == 'urgent'
    assert b.band_for(0.3) == 'urgent'
    assert b.band_for(0.2) == 'soon'
    assert b.band_for(0.1) == 'soon'
    assert b.band_for(0.05) == 'routine'


def test_thresholds_catch_95_percent_of_malignant_on_val():
    meta = checkpoint.read_metadata(checkpoint.SHIPPED_DIR)
    points = meta['calibration']['val_operating_points']
    assert points['urgent']['threshold'] == meta['thresholds']['urgent']
    assert points['urgent']['sensitivity'] >= 0.95
    assert points['soon']['sensitivity'] >= points['urgent']['sensitivity']


@pytest.mark.skipif(not (HAM_DATA / 'labels.csv').exists(), reason='HAM10000 not available')
def test_thresholds_recomputed_on_val_images(clf):
    from jax_models import data

    val = data.read_folder(HAM_DATA).subset(split='val')
    malignant = [p for p, m in zip(val.paths, val.malignant, strict=True) if m]
    preds = clf.predict([Image.open(p) for p in malignant])
    assert np.mean([p.urgency == 'urgent' for p in preds]) >= 0.95
