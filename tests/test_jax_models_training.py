"""A tiny end-to-end training run (and GAN run) on the fixture images."""

from pathlib import Path

import numpy as np
from PIL import Image

from jax_models import data, gan, train
from jax_models.configs import gan as gan_configs
from jax_models.configs import tiny
from jax_models.serving import load_classifier

FIXTURES = Path(__file__).parent / 'fixtures' / 'ham10000'


def fixture_records(canvas):
    records = data.load(FIXTURES, canvas)
    # 17 images: every other one becomes val, so both splits hold both outcomes.
    records.split = np.where(np.arange(len(records)) % 2 == 0, 'train', 'val')
    assert set(records.malignant[records.split == 'val']) == {0, 1}
    return records


def test_tiny_training_run_end_to_end(tmp_path):
    config = tiny.get_config()
    metadata = train.train_and_evaluate(config, tmp_path, records=fixture_records(config['canvas']), progress=False)
    assert (tmp_path / 'weights.npz').exists() and (tmp_path / 'metadata.json').exists()
    assert len((tmp_path / 'train_log.jsonl').read_text().splitlines()) == config['epochs']
    assert metadata['image_size'] == 32 and metadata['temperature'] > 0
    assert set(metadata['thresholds']) == {'urgent', 'soon'}
    clf = load_classifier(tmp_path)
    assert clf.version == metadata['version']
    preds = clf.predict([Image.open(p) for p in sorted((FIXTURES / 'images').glob('*.jpg'))[:3]])
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in preds)


def test_tiny_distillation_from_a_larger_input_teacher(tmp_path):
    records = fixture_records(40)
    teacher_config = tiny.get_config()
    teacher_config.update(image_size=40, epochs=1)
    train.train_and_evaluate(teacher_config, tmp_path / 'teacher', records=records, progress=False)
    config = tiny.get_config()
    config.update(teacher=str(tmp_path / 'teacher'), distill_alpha=0.7)
    metadata = train.train_and_evaluate(config, tmp_path / 'student', records=records, progress=False)
    history = metadata['training']['history']
    assert len(history) == config['epochs'] and all(np.isfinite(row['loss']) for row in history)
    assert metadata['image_size'] == 32  # the student keeps its own input size
    # The same run without a teacher trains to other weights: the soft targets took part.
    plain = train.train_and_evaluate(tiny.get_config(), tmp_path / 'plain', records=records, progress=False)
    assert plain['version'] != metadata['version']
    assert plain['training']['history'][0]['loss'] != history[0]['loss']


def test_a_continued_run_records_its_parent(tmp_path):
    records = fixture_records(40)
    parent = train.train_and_evaluate(tiny.get_config(), tmp_path / 'parent', records=records, progress=False)
    config = tiny.get_config()
    config.update(init_from=str(tmp_path / 'parent'), epochs=1)
    child = train.train_and_evaluate(config, tmp_path / 'child', records=records, progress=False)
    record = child['training']['initialised_from']
    assert record['version'] == parent['version']
    assert record['training']['epochs_run'] == 2 and 'history' not in record['training']
    assert parent['training']['initialised_from'] is None


def test_moving_average_of_the_weights_competes_for_the_checkpoint(tmp_path):
    average = train.ema_update({'w': np.float32(1.0)}, {'w': np.float32(3.0)}, 0.75)
    assert float(average['w']) == 1.5
    config = tiny.get_config()
    config.update(ema_decay=0.5)
    metadata = train.train_and_evaluate(config, tmp_path, records=fixture_records(config['canvas']), progress=False)
    history = metadata['training']['history']
    assert all(set(row['ema_val_auc']) == set(row['val_auc']) for row in history)
    best = max(history, key=lambda row: max(row['selection'], row['ema_selection']))
    expected = 'ema' if best['ema_selection'] > best['selection'] else 'trained'
    assert metadata['training']['best_weights'] == expected
    assert metadata['training']['best_epoch'] == best['epoch']


def test_tiny_gan_and_grid(tmp_path):
    config = gan_configs.get_config()
    config.update(steps=2, batch_size=4, width=16, latent=8)
    records = data.load(FIXTURES, 40)
    gen = gan.train_gan(records.images, records.label, config, tmp_path, log=lambda _: None)
    images = gan.sample(gen, 4, 6)
    assert images.shape == (6, 64, 64, 3) and images.dtype == np.uint8
    picture = gan.grid(images, columns=3)
    assert picture.size == (3 * 66 + 2, 2 * 66 + 2)
    loaded, meta = gan.load_generator(tmp_path)
    np.testing.assert_array_equal(gan.sample(loaded, 4, 6), images)
    pool = gan.synthesize_pool(loaded, meta['class_names'], ['mel'], 6, 40)
    assert pool['images'].shape == (6, 40, 40, 3) and set(pool['label']) == {4}
