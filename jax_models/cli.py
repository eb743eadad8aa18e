"""Command line of the ML side: `train`, `evaluate`, `predict`, `fit-ood`, `gan sample|train`.

`register(subparsers)` adds them to the `skindoc` command; `python -m
jax_models.cli ...` runs them on their own.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import sys
from pathlib import Path

CSV_ERROR = 'error'


# --- train -------------------------------------------------------------------
def cmd_train(args) -> int:
    from jax_models import train

    config = importlib.import_module(f'jax_models.configs.{args.config}').get_config()
    config['data'] = args.data
    for name in ('epochs', 'seed', 'batch_size'):
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    if args.synthetic:
        config['synthetic'] = args.synthetic
    if args.init:
        config['init_from'] = args.init
    if args.teacher:
        config['teacher'] = args.teacher
    metadata = train.train_and_evaluate(config, args.out, progress=not args.quiet)
    t = metadata['training']
    print(
        f"checkpoint {metadata['version']} in {args.out}: best epoch {t['best_epoch']} of "
        f"{t['epochs_run']}, {t['seconds']:.0f} s on {t['device']}; "
        f"temperature {metadata['temperature']:.3f}, thresholds {metadata['thresholds']}"
    )
    for name, fig in metadata['metrics_canvas_path'].items():
        auc = fig['auc_malignant']
        print(f"  {name}: AUC {auc['auc']:.3f} [{auc['ci95'][0]:.3f}, {auc['ci95'][1]:.3f}]")
    return 0


# --- evaluate ----------------------------------------------------------------
def cmd_evaluate(args) -> int:
    if args.outcomes:
        return _evaluate_outcomes(args)
    if not args.data:
        print('give --data (a labelled dataset) or --outcomes (a clinic export)', file=sys.stderr)
        return 2
    if args.robustness:
        from jax_models import robustness

        result = robustness.evaluate(args.data, args.weights, args.out, n_boot=args.bootstrap)
        print(robustness.summary_text(result))
        return 0
    from jax_models import evaluate

    result = evaluate.evaluate(
        args.data, args.split, args.weights, args.out, recalibrate=args.calibrate, n_boot=args.bootstrap
    )
    for name, fig in result['sets'].items():
        print(evaluate.summary_text(name, fig))
    if args.out:
        print(f'figures and plots written to {args.out}')
    return 0


def _evaluate_outcomes(args) -> int:
    """`evaluate --outcomes DIR [--calibrate --save-to NEW]`: a clinic's confirmed cases."""
    import json

    from jax_models import outcomes

    if args.calibrate != bool(args.save_to):
        print(
            '--calibrate with --outcomes writes a new checkpoint: give --save-to NEW_FOLDER (and only then)',
            file=sys.stderr,
        )
        return 2
    try:
        result = outcomes.evaluate_outcomes(
            args.outcomes, args.weights, n_boot=args.bootstrap, save_to=args.save_to, min_malignant=args.min_malignant
        )
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(outcomes.summary_text(result))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / 'figures.json').write_text(json.dumps(result, indent=2) + '\n')
    return 0


# --- predict -----------------------------------------------------------------
def image_files(inputs) -> list[Path]:
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith('.')))
        else:
            files.append(p)
    return files


def open_image(path: Path):
    """A decoded PIL image, or raises with a message a person can act on."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy() if im.mode != 'P' else im.convert('RGBA')
    except FileNotFoundError:
        raise ValueError('file not found') from None
    except UnidentifiedImageError:
        raise ValueError('not an image Pillow can read') from None
    except (OSError, SyntaxError) as e:
        raise ValueError(f'broken image: {e}') from e


def cmd_predict(args) -> int:
    from jax_models.serving import load_classifier

    clf = load_classifier(args.weights)
    files = image_files(args.images)
    columns = ['image', 'p_malignant', 'urgency', 'dx'] + [f'p_{c}' for c in clf.class_names] + [CSV_ERROR]
    failures = 0
    with open(args.csv, 'w', newline='') if args.csv else contextlib.nullcontext(sys.stdout) as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for start in range(0, len(files), args.batch):
            chunk = files[start : start + args.batch]
            good, rows = [], {}
            for path in chunk:
                try:
                    good.append((path, open_image(path)))
                except ValueError as e:
                    rows[path] = {'image': path.name, CSV_ERROR: str(e)}
                    failures += 1
                    print(f'{path}: {e}', file=sys.stderr)
            preds = clf.predict([im for _, im in good]) if good else []
            for (path, _), p in zip(good, preds, strict=True):
                row = {
                    'image': path.name,
                    'p_malignant': f'{p.p_malignant:.6f}',
                    'urgency': p.urgency,
                    'dx': p.dx,
                    CSV_ERROR: '',
                }
                row.update({f'p_{c}': f'{v:.6f}' for c, v in p.probabilities.items()})
                rows[path] = row
            for path in chunk:
                writer.writerow(rows[path])
    if failures:
        print(f'{failures} of {len(files)} files could not be scored (error rows written)', file=sys.stderr)
    return 1 if failures else 0


# --- fit-ood -----------------------------------------------------------------
def cmd_fit_ood(args) -> int:
    from jax_models import ood_fit

    entry = ood_fit.fit_checkpoint(args.weights, args.data)
    print(
        f"out-of-distribution statistics for model {entry['fitted_on']['model_version']} "
        f"(weights {entry['weights_digest']}): {entry['feature_dim']} features, {entry['classes']} classes, "
        f"threshold {entry['threshold']:.1f} (val pass {entry['val_pass_target']:.1%}, "
        f"train pass {entry['train_pass']:.1%})"
    )
    return 0


# --- gan ---------------------------------------------------------------------
def cmd_gan_sample(args) -> int:
    from jax_models import gan

    generator = args.generator or str(Path(__file__).resolve().parent / 'weights' / 'gan')
    gen, meta = gan.load_generator(generator)
    if args.cls not in meta['class_names']:
        print(f"unknown class {args.cls!r}; one of {', '.join(meta['class_names'])}", file=sys.stderr)
        return 2
    images = gan.sample(gen, meta['class_names'].index(args.cls), args.n, args.seed)
    gan.grid(images, columns=args.columns).save(args.out)
    print(f'{args.n} generated {args.cls} images -> {args.out} (synthetic, not patients)')
    return 0


def cmd_gan_train(args) -> int:
    from jax_models import data, gan

    config = importlib.import_module('jax_models.configs.gan').get_config()
    if args.steps:
        config['steps'] = args.steps
    canvas = importlib.import_module('jax_models.configs.default').get_config()['canvas']
    records = data.concat([data.load(d, canvas) for d in args.data]).subset(split='train')
    gan.train_gan(records.images, records.label, config, args.out)
    print(f'generator written to {args.out}')
    return 0


# --- wiring ------------------------------------------------------------------
def register(subparsers) -> None:
    """Adds train, evaluate, predict, fit-ood and gan to an argparse subparsers object."""
    p = subparsers.add_parser(
        'train', help='train the lesion classifier', description='Train, select on val, calibrate, write a checkpoint.'
    )
    p.add_argument(
        '--data',
        required=True,
        action='append',
        help='labelled folder(s) (labels.csv + images/), a parent of several, or a pack .npz; repeatable',
    )
    p.add_argument('--out', required=True, help='checkpoint folder to write')
    p.add_argument('--config', default='default', help='module under jax_models.configs')
    p.add_argument('--epochs', type=int)
    p.add_argument('--batch-size', dest='batch_size', type=int)
    p.add_argument('--seed', type=int)
    p.add_argument('--synthetic', help='npz of GAN images to add to the training pool')
    p.add_argument('--init', help='start from the weights of this checkpoint folder')
    p.add_argument('--teacher', help='distil from this checkpoint folder (its input may be larger)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        'evaluate',
        help='figures of a checkpoint on a labelled split',
        description='ROC AUC with lesion-bootstrap CI, operating points, '
        'calibration, confusion matrix; plots and JSON.',
    )
    p.add_argument('--data', help='labelled folder or a parent of several')
    p.add_argument(
        '--outcomes', help='a `skindoc outcomes export` folder: the clinic\'s confirmed cases (instead of --data)'
    )
    p.add_argument(
        '--robustness',
        action='store_true',
        help='AUC on HAM10000 test and ISIC 2017 val under fixed, seeded degradations '
        '(blur, JPEG, resolution, exposure, colour temperature, crop); --data is '
        'the parent folder; --split is ignored',
    )
    p.add_argument('--split', default='test', choices=['train', 'val', 'test'])
    p.add_argument('--weights', help='checkpoint folder (default: the shipped one)')
    p.add_argument('--out', help='folder for figures.json, roc.png, reliability.png')
    p.add_argument('--bootstrap', type=int, default=2000, help='bootstrap resamples')
    p.add_argument(
        '--calibrate',
        action='store_true',
        help='refit temperature and urgency thresholds on this split through the '
        'serving path and write them into the checkpoint (val only); with '
        '--outcomes, fit on the export\'s val cases and write a new checkpoint '
        'to --save-to',
    )
    p.add_argument('--save-to', dest='save_to', help='with --outcomes --calibrate: the new checkpoint folder')
    # 20: jax_models.outcomes.DEFAULT_MIN_MALIGNANT (not imported here: it loads JAX).
    p.add_argument(
        '--min-malignant',
        dest='min_malignant',
        type=int,
        default=20,
        help='with --outcomes --calibrate: fewest confirmed malignant val cases to fit on',
    )
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser(
        'predict',
        help='score image files or folders',
        description='One CSV row per image; unreadable files get an '
        'error row and the rest still run. Exit 1 if any failed.',
    )
    p.add_argument('images', nargs='+', help='image files or folders')
    p.add_argument('--csv', help='write here instead of stdout')
    p.add_argument('--weights', help='checkpoint folder (default: the shipped one)')
    p.add_argument('--batch', type=int, default=64)
    p.set_defaults(func=cmd_predict)

    p = subparsers.add_parser(
        'fit-ood',
        help='fit the photo gate\'s out-of-distribution statistics',
        description='Mahalanobis statistics of the network\'s pooled features: '
        'class means and covariance on the train splits, the threshold '
        'on the val splits; written into the checkpoint folder. Run it '
        'again whenever the weights change.',
    )
    p.add_argument(
        '--data',
        required=True,
        action='append',
        help='labelled folder(s) the model was trained on (labels.csv + images/); repeatable',
    )
    p.add_argument('--weights', help='checkpoint folder (default: the shipped one)')
    p.set_defaults(func=cmd_fit_ood)

    p = subparsers.add_parser(
        'gan', help='the conditional GAN experiment', description='Sample from or train the class-conditional GAN.'
    )
    gan_sub = p.add_subparsers(dest='gan_command', required=True)
    s = gan_sub.add_parser('sample', help='write a grid of generated images of one class')
    s.add_argument('--class', dest='cls', required=True, help='akiec, bcc, bkl, df, mel, nv, vasc')
    s.add_argument('--n', type=int, default=64)
    s.add_argument('--out', required=True, help='PNG to write')
    s.add_argument('--columns', type=int, default=8)
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--generator', help='generator folder (default: the shipped one)')
    s.set_defaults(func=cmd_gan_sample)
    t = gan_sub.add_parser('train', help='train the GAN on the train splits')
    t.add_argument('--data', required=True, action='append')
    t.add_argument('--out', required=True)
    t.add_argument('--steps', type=int)
    t.set_defaults(func=cmd_gan_train)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m jax_models.cli', description='SkinDoc lesion classifier tools.')
    register(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
