"""The GAN ablation and the shipped model's training, in one reproducible run.

    python -m jax_models.experiment --data .data/pack.npz --out runs/experiment \
        [--config gpu] [--tiny]

1. trains the conditional GAN on the `train` splits and writes sample grids;
2. generates images of the rare malignant classes (akiec, bcc, mel);
3. trains the classifier twice with the same seed and budget: without (arm A)
   and with (arm B) the generated images in its training pool;
4. picks the arm with the better val selection score (never test) and writes
   ablation.json with both arms' val and test figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from jax_models import data, gan, train


def arm_summary(metadata: dict) -> dict:
    figures = metadata['metrics_canvas_path']
    history = metadata['training']['history']
    best = next(r for r in history if r['epoch'] == metadata['training']['best_epoch'])
    return {
        'version': metadata['version'],
        'best_epoch': metadata['training']['best_epoch'],
        'epochs_run': metadata['training']['epochs_run'],
        'seconds': metadata['training']['seconds'],
        'val_selection_score': best['selection'],
        'figures': {
            k: {
                'auc': v['auc_malignant']['auc'],
                'ci95': v['auc_malignant']['ci95'],
                'spec_at_sens95': v['specificity_at_sensitivity_95']['specificity'],
                'n': v['n'],
            }
            for k, v in figures.items()
        },
    }


def run(
    data_path: str,
    out: Path,
    config_name: str,
    tiny: bool,
    every: int = 1,
    generator: str | None = None,
    arms: tuple = ('without_gan', 'with_gan'),
    log=print,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    config = importlib.import_module(f'jax_models.configs.{config_name}').get_config()
    gan_config = importlib.import_module('jax_models.configs.gan').get_config()
    if tiny:
        config.update(epochs=1, max_seconds=60)
        gan_config.update(steps=4, batch_size=8, width=32, per_class=16)
    config['data'] = [data_path]
    started = time.time()
    records = data.load(data_path, config['canvas'])
    if every > 1:
        records = records.select(np.arange(len(records)) % every == 0)
    log(f'loaded {len(records)} images in {time.time() - started:.1f} s')
    train_part = records.subset(split='train')

    t = time.time()
    if generator:  # a generator trained earlier: skip GAN training
        gen, _ = gan.load_generator(generator)
        (out / 'gan').mkdir(parents=True, exist_ok=True)
    else:
        gen = gan.train_gan(train_part.images, train_part.label, gan_config, out / 'gan', log=log)
    for c in gan_config['class_names']:
        label = gan_config['class_names'].index(c)
        gan.grid(gan.sample(gen, label, 32, seed=1)).save(out / 'gan' / f'grid_{c}.png')
    pool = gan.synthesize_pool(
        gen, gan_config['class_names'], gan_config['synthetic_classes'], gan_config['per_class'], config['canvas']
    )
    synthetic_path = out / 'synthetic.npz'
    np.savez(synthetic_path, **pool)
    gan_seconds = time.time() - t
    log(f'GAN: {gan_seconds:.0f} s, {len(pool["label"])} synthetic images')

    summaries = {}
    for arm, synthetic in (('without_gan', None), ('with_gan', str(synthetic_path))):
        if arm not in arms:
            continue
        cfg = dict(config, synthetic=synthetic)
        t = time.time()
        metadata = train.train_and_evaluate(cfg, out / arm, records=records, progress=False)
        summaries[arm] = arm_summary(metadata)
        log(f'{arm}: {time.time() - t:.0f} s ' + json.dumps(summaries[arm]['figures']))
    chosen = max(summaries, key=lambda a: summaries[a]['val_selection_score'])
    shutil.copytree(out / chosen, out / 'shipped', dirs_exist_ok=True)
    result = {
        'config': config_name,
        'gan_seconds': gan_seconds,
        'gan_config': gan_config,
        'arms': summaries,
        'shipped_arm': chosen,
        'rule': 'ship the GAN arm only if its val selection score is higher',
        'total_seconds': time.time() - started,
    }
    (out / 'ablation.json').write_text(json.dumps(result, indent=2) + '\n')
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', required=True, help='a pack .npz (see jax_models.data.pack)')
    parser.add_argument('--out', required=True)
    parser.add_argument('--config', default='gpu', help='module under jax_models.configs')
    parser.add_argument('--tiny', action='store_true', help='a few steps, to check the plumbing')
    parser.add_argument('--every', type=int, default=1, help='keep every k-th image (dry runs)')
    parser.add_argument('--generator', default=None, help='reuse this trained GAN')
    parser.add_argument('--arms', default='without_gan,with_gan')
    args = parser.parse_args(argv)
    run(
        args.data,
        Path(args.out),
        args.config,
        args.tiny,
        args.every,
        args.generator,
        tuple(args.arms.split(',')),
        log=lambda m: print(m, flush=True),
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
