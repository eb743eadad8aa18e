"""The v2 recipe end to end on the fixture images: ImageNet start, linear probe, frozen
BatchNorm, camera augmentation, float16 weights, a provisional best checkpoint."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jax_models import augment, camera, checkpoint, data, pretrained, sampling, train
from jax_models.configs import lite0_cpu, tiny
from tests import lite0_fixture
from tests.test_jax_models_training import fixture_records


def tiny_lite0_config(backbone):
    """The v2 recipe at the tiny config's input size (that of the fixture images), for a few steps."""
    config = lite0_cpu.get_config()
    config.update({key: tiny.get_config()[key] for key in ('image_size', 'canvas')})
    config.update(batch_size=4, epochs=1, steps_per_epoch=2, eval_batch_size=8, linear_probe_steps=5, max_seconds=None)
    # All but the last block frozen: the backward pass (and its compilation) stays small.
    config.update(backbone_weights=str(backbone), model=dict(config['model'], frozen_blocks=15))
    return config


def test_lite0_fine_tune_end_to_end(tmp_path):
    backbone = tmp_path / 'imagenet.npz'
    imagenet = pretrained.convert(lite0_fixture.state_dict())
    np.savez(backbone, **imagenet)
    config = tiny_lite0_config(backbone)
    metadata = train.train_and_evaluate(
        config, tmp_path / 'run', records=fixture_records(config['canvas']), progress=False
    )
    log = (tmp_path / 'run' / 'train_log.jsonl').read_text()
    rows = [json.loads(line) for line in log.splitlines()]
    assert [r['epoch'] for r in rows] == [0, 1]  # the linear probe's figures, then the epoch
    assert metadata['training']['pretrained']['linear_probe_steps'] == 5
    assert metadata['data']['pretrained']['licence'] == 'Apache-2.0'
    with np.load(tmp_path / 'run' / 'weights.npz') as z:
        assert z['stem_kernel'].dtype == np.float16
        # BatchNorm statistics are ImageNet's, untouched by fine-tuning ...
        np.testing.assert_array_equal(
            z['blocks/15/depthwise/bn/var'], imagenet['blocks/15/depthwise/bn/var'].astype(np.float16)
        )
        # ... while the weights of the trained block moved and those of frozen blocks did not
        # (AdamW's decoupled decay alone shifts them by under 1e-7).
        assert not np.array_equal(
            z['blocks/15/depthwise/kernel'], imagenet['blocks/15/depthwise/kernel'].astype(np.float16)
        )
        np.testing.assert_array_equal(
            z['blocks/3/depthwise/kernel'], imagenet['blocks/3/depthwise/kernel'].astype(np.float16)
        )
    model, loaded = checkpoint.load(tmp_path / 'run')  # float16 on disk, float32 in memory
    assert loaded['version'] == metadata['version'] and model.frozen_blocks == 15
    assert model.stem_kernel[...].dtype == jnp.float32
    # The last epoch's weights are kept whether or not selection chose them.
    last = checkpoint.read_metadata(tmp_path / 'run' / 'last_epoch')
    assert last['training']['provisional'] and last['temperature'] == 1.0
    assert last['training']['best_epoch'] == 1 and last['training']['best_weights'] == 'trained'


def test_jpeg_simulation_tracks_the_real_codec():
    """At low and high quality, the simulated loss is within 2x of Pillow's (4:2:0 both)."""
    import io

    rng = np.random.default_rng(0)
    smooth = np.clip(np.cumsum(rng.normal(0, 6, (32, 32, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    x = jnp.asarray(smooth, jnp.float32) / 255
    losses = {}
    for quality in (20, 90):
        buf = io.BytesIO()
        Image.fromarray(smooth).save(buf, format='JPEG', quality=quality)
        real = np.asarray(Image.open(buf), np.float32)
        simulated = np.asarray(camera.jpeg_roundtrip(x, float(quality))) * 255
        loss_real, loss_simulated = np.abs(real - smooth).mean(), np.abs(simulated - smooth).mean()
        assert 0.5 * loss_real < loss_simulated < 2 * loss_real, (quality, loss_real, loss_simulated)
        losses[quality] = loss_simulated
    assert losses[20] > losses[90]


def test_camera_augmentation_stays_in_range_and_changes_the_image():
    cfg = lite0_cpu.get_config()['augment']
    cfg.update(defocus_prob=1.0, motion_prob=1.0, downscale_prob=1.0, jpeg_prob=1.0)
    images = jnp.asarray(np.random.default_rng(1).integers(0, 255, (2, 40, 40, 3), np.uint8))
    plain = dict(cfg, camera=False)
    out = augment.augment_batch(jax.random.key(0), images, 32, cfg)
    ref = augment.augment_batch(jax.random.key(0), images, 32, plain)
    assert out.shape == (2, 32, 32, 3) and float(out.min()) >= 0 and float(out.max()) <= 255
    # Blur and resolution loss remove the noise's fine detail.
    assert float(jnp.abs(jnp.diff(out, axis=1)).mean()) < float(jnp.abs(jnp.diff(ref, axis=1)).mean())


def test_prevalence_balance_moves_each_source_to_the_pooled_malignant_share():
    # Source a: 1 malignant of 10; source b: 5 of 10; pooled 6 of 20.
    malignant = np.array([1] + [0] * 9 + [1] * 5 + [0] * 5, np.int32)
    sources = np.array(['a'] * 10 + ['b'] * 10)
    ids = np.array([f'img{i}' for i in range(20)])
    records = data.Records(ids, ids, sources, np.array(['train'] * 20), malignant, malignant)

    def share(probs, source):
        in_source = records.source == source
        return probs[in_source & (malignant == 1)].sum() / probs[in_source].sum(), probs[in_source].sum()

    plain = sampling.sampling_probabilities(records, {'a': 1.0, 'b': 1.0})
    assert np.allclose(share(plain, 'a'), (0.1, 0.5))
    balanced = sampling.sampling_probabilities(records, {'a': 1.0, 'b': 1.0}, prevalence_balance=1.0)
    for source in ('a', 'b'):
        mal_share, total = share(balanced, source)
        assert np.isclose(mal_share, 0.3) and np.isclose(total, 0.5)  # pooled share, same source total
    half = sampling.sampling_probabilities(records, {'a': 1.0, 'b': 1.0}, prevalence_balance=0.5)
    assert 0.1 < share(half, 'a')[0] < 0.3 < share(half, 'b')[0] < 0.5
