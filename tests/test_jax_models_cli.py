"""jax_models.cli: the train / evaluate / predict / gan commands."""

import argparse
import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from jax_models import cli

FIXTURES = Path(__file__).parent / 'fixtures' / 'ham10000'


def test_register_adds_every_command_with_help(capsys):
    parser = argparse.ArgumentParser(prog='skindoc')
    sub = parser.add_subparsers(dest='command', required=True)
    cli.register(sub)
    for argv in (
        ['train', '--help'],
        ['evaluate', '--help'],
        ['predict', '--help'],
        ['gan', '--help'],
        ['gan', 'sample', '--help'],
    ):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 0
    args = parser.parse_args(['predict', 'x.jpg'])
    assert callable(args.func)
    args = parser.parse_args(['gan', 'sample', '--class', 'mel', '--out', 'g.png'])
    assert args.func is cli.cmd_gan_sample


def test_predict_folder_with_broken_files(tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    good = sorted((FIXTURES / 'images').glob('*.jpg'))[:3]
    for p in good:
        shutil.copy(p, folder)
    (folder / 'broken.jpg').write_bytes(good[0].read_bytes()[:300])
    (folder / 'notes.txt').write_text('not a photo')
    out = tmp_path / 'scores.csv'
    rc = cli.main(['predict', str(folder), str(tmp_path / 'missing.png'), '--csv', str(out)])
    assert rc == 1  # some files failed; the rest were scored
    rows = list(csv.DictReader(out.open()))
    assert [r['image'] for r in rows] == sorted(p.name for p in folder.iterdir()) + ['missing.png']
    by_name = {r['image']: r for r in rows}
    for p in good:
        row = by_name[p.name]
        assert row['error'] == ''
        assert 0.0 <= float(row['p_malignant']) <= 1.0
        assert row['urgency'] in ('urgent', 'soon', 'routine')
        assert sum(float(row[f'p_{c}']) for c in ('akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc')) == pytest.approx(
            1.0, abs=1e-4
        )
    for name in ('broken.jpg', 'notes.txt', 'missing.png'):
        assert by_name[name]['error'] and by_name[name]['p_malignant'] == ''


def test_evaluate_writes_figures_and_plots(tmp_path, capsys):
    assert (
        cli.main(['evaluate', '--data', str(FIXTURES), '--split', 'train', '--out', str(tmp_path), '--bootstrap', '20'])
        == 0
    )
    figures = json.loads((tmp_path / 'figures.json').read_text())
    fig = figures['sets']['ham10000/train']
    assert fig['n'] == 17 and 0 <= fig['auc_malignant']['auc'] <= 1
    assert (tmp_path / 'roc.png').read_bytes()[:4] == b'\x89PNG'
    assert (tmp_path / 'reliability_ham10000_train.png').exists()
    assert 'AUC malignant vs benign' in capsys.readouterr().out


def test_evaluate_refuses_to_calibrate_on_test(tmp_path):
    with pytest.raises(ValueError):
        cli.main(['evaluate', '--data', str(FIXTURES), '--split', 'test', '--calibrate'])


def test_gan_sample_writes_a_grid(tmp_path):
    out = tmp_path / 'grid.png'
    assert cli.main(['gan', 'sample', '--class', 'mel', '--n', '8', '--out', str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size == (8 * 66 + 2, 66 + 2)
    assert cli.main(['gan', 'sample', '--class', 'nope', '--out', str(out)]) == 2


def test_fit_ood_writes_statistics_into_any_checkpoint(tmp_path, capsys):
    from jax_models import checkpoint, ood
    from jax_models.serving import load_classifier

    weights = tmp_path / 'model'
    shutil.copytree(checkpoint.SHIPPED_DIR, weights, ignore=shutil.ignore_patterns('gan', 'ood.npz'))
    metadata = checkpoint.read_metadata(weights)
    metadata.pop('ood', None)
    (weights / 'metadata.json').write_text(json.dumps(metadata))
    assert load_classifier(weights).ood is None  # no statistics: the gate reports the check unavailable
    data = tmp_path / 'data'
    shutil.copytree(FIXTURES / 'images', data / 'images')
    rows = list(csv.DictReader((FIXTURES / 'labels.csv').open()))
    for i, row in enumerate(rows):
        row['split'] = 'val' if i % 3 == 0 else 'train'
    with (data / 'labels.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert cli.main(['fit-ood', '--weights', str(weights), '--data', str(data)]) == 0
    assert 'out-of-distribution statistics for model' in capsys.readouterr().out
    entry = checkpoint.read_metadata(weights)['ood']
    assert entry['weights_digest'] == ood.weights_digest(weights)
    assert entry['fitted_on']['train'] == {'data': 11}
    assert checkpoint.read_metadata(weights)['version'] == metadata['version'], 'the model version is unchanged'
    clf = load_classifier(weights)
    assert clf.ood.means.shape == (entry['classes'], entry['feature_dim'])  # whatever the network's width
    predictions = clf.predict([Image.open(p) for p in sorted((data / 'images').glob('*.jpg'))])
    assert all(p.in_distribution is not None and p.ood_score >= 0 for p in predictions)
