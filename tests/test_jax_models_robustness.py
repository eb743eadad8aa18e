"""`evaluate --robustness`: the degradations, their seeding, and the figures through serving."""

from pathlib import Path

import numpy as np
from PIL import Image

from jax_models import checkpoint, robustness

FIXTURES = Path(__file__).parent / 'fixtures' / 'ham10000'
SHIPPED = checkpoint.SHIPPED_DIR


def photo():
    with Image.open(sorted((FIXTURES / 'images').glob('*.jpg'))[0]) as im:
        return im.convert('RGB')


def test_every_degradation_changes_the_photo_and_is_seeded():
    original = np.asarray(photo(), np.float32)
    for name, fn in robustness.CONDITIONS.items():
        a = fn(photo(), np.random.default_rng(3))
        b = fn(photo(), np.random.default_rng(3))
        assert a.mode == 'RGB'
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        if name == 'clean':
            continue
        if name == 'off_centre_crop':
            assert a.size == (round(0.7 * original.shape[1]), round(0.7 * original.shape[0]))
            continue
        assert a.size == photo().size
        assert np.abs(np.asarray(a, np.float32) - original).mean() > 1.0, name


def test_exposure_and_colour_act_in_the_expected_direction():
    original = np.asarray(photo(), np.float32)
    rng = np.random.default_rng(0)
    assert np.asarray(robustness.brighter(photo(), rng), np.float32).mean() > original.mean()
    assert np.asarray(robustness.darker(photo(), rng), np.float32).mean() < original.mean()
    warm = np.asarray(robustness.warm_light(photo(), rng), np.float32)
    assert warm[..., 0].mean() > original[..., 0].mean()
    assert warm[..., 2].mean() < original[..., 2].mean()


def test_robustness_figures_through_the_serving_path(tmp_path):
    result = robustness.evaluate(
        FIXTURES, SHIPPED, tmp_path, n_boot=20, conditions=('clean', 'jpeg_q30'), sets=(('ham10000', 'train'),)
    )
    figures = result['sets']['ham10000/train']
    assert set(figures) == {'clean', 'jpeg_q30'}
    assert 0.5 < figures['clean']['auc'] <= 1.0  # the fixtures are mostly clear cases
    assert (tmp_path / 'robustness.json').exists()
    assert 'jpeg_q30' in robustness.summary_text(result)
