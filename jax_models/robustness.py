"""`evaluate --robustness`: a checkpoint's AUC under fixed, seeded image degradations.

Each condition changes the photo itself, before the serving path sees it, the
way another clinic's device or a phone would: defocus and motion blur, JPEG at
quality 30, lost resolution, exposure, a colour temperature shift, an
off-centre crop. Sizes are relative to the photo (1000 px photos get the
issue's "300 px"; the team's 128-224 px copies get the same 30 %), and every
random choice is seeded by the image's position, so two checkpoints see the
very same degraded images.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from jax_models import data, evaluation, metrics
from jax_models.preprocess import preprocess, to_rgb
from jax_models.serving import load_classifier

SETS = (('ham10000', 'test'), ('isic2017', 'val'))
SEED = 20261126


def _long(im: Image.Image) -> int:
    return max(im.size)


def defocus(im, rng):
    return im.filter(ImageFilter.GaussianBlur(radius=0.015 * _long(im)))


def motion(im, rng):
    """Mean of copies shifted along a line 4 % of the photo long, at a seeded angle."""
    x = np.asarray(im, np.float32)
    length, angle = 0.04 * _long(im), rng.uniform(0, np.pi)
    taps = max(3, int(round(length)) | 1)
    padded = np.pad(x, ((taps, taps), (taps, taps), (0, 0)), mode='edge')
    out = np.zeros_like(x)
    h, w = x.shape[:2]
    for t in np.linspace(-0.5, 0.5, taps):
        dy, dx = int(round(t * length * np.sin(angle))), int(round(t * length * np.cos(angle)))
        out += padded[taps + dy : taps + dy + h, taps + dx : taps + dx + w]
    return Image.fromarray(np.clip(out / taps + 0.5, 0, 255).astype(np.uint8))


def jpeg_q30(im, rng):
    buf = io.BytesIO()
    im.save(buf, format='JPEG', quality=30)
    buf.seek(0)
    return Image.open(buf).convert('RGB')


def downscale(im, rng):
    """To a 300 px long side (at most 30 % of the photo) and back up."""
    long_side = min(300, round(0.3 * _long(im)))
    scale = long_side / _long(im)
    small = im.resize(
        (max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR, reducing_gap=None
    )
    return small.resize(im.size, Image.BILINEAR)


def _linear_gain(im, gains):
    """Multiplies linear-light (not sRGB-encoded) values per channel: exposure, illuminant."""
    srgb = np.asarray(im, np.float32) / 255.0
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    lin = np.clip(lin * np.asarray(gains, np.float32), 0, 1)
    out = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8))


def brighter(im, rng):
    return _linear_gain(im, (1.4, 1.4, 1.4))


def darker(im, rng):
    return _linear_gain(im, (0.6, 0.6, 0.6))


def warm_light(im, rng):
    """About 6500 K -> 3500 K: red up, blue down."""
    return _linear_gain(im, (1.25, 1.0, 0.7))


def off_centre_crop(im, rng):
    """A crop of 70 % of each side, pushed to a seeded corner: the lesion off centre."""
    w, h = im.size
    cw, ch = round(0.7 * w), round(0.7 * h)
    left = (w - cw) * int(rng.integers(2))
    top = (h - ch) * int(rng.integers(2))
    return im.crop((left, top, left + cw, top + ch))


CONDITIONS = {
    'clean': lambda im, rng: im,
    'defocus_blur': defocus,
    'motion_blur': motion,
    'jpeg_q30': jpeg_q30,
    'downscale_300px': downscale,
    'exposure_plus40': brighter,
    'exposure_minus40': darker,
    'colour_temperature_warm': warm_light,
    'off_centre_crop': off_centre_crop,
}


def degraded_inputs(paths, condition: str, size: int) -> np.ndarray:
    fn = CONDITIONS[condition]
    out = np.empty((len(paths), size, size, 3), np.float32)
    for i, path in enumerate(paths):
        rng = np.random.default_rng([SEED, i, list(CONDITIONS).index(condition)])
        with Image.open(path) as im:
            out[i] = preprocess(fn(to_rgb(im), rng), size)
    return out


def evaluate(data_dir, weights=None, out=None, n_boot: int = 500, conditions=tuple(CONDITIONS), sets=SETS) -> dict:
    """AUC (lesion-bootstrap CI) of p_malignant per set and condition, through serving."""
    clf = load_classifier(weights)
    malignant = clf.metadata['malignant_classes']
    folders = {f.name: f for f in data.source_dirs(data_dir)}
    result = {'model_version': clf.version, 'sets': {}}
    for source, split in sets:
        if source not in folders:
            continue
        part = data.read_folder(folders[source]).subset(split=split)
        figures = {}
        for condition in conditions:
            probs = clf.predict_arrays(degraded_inputs(part.paths, condition, clf.image_size))
            p_mal = evaluation.p_malignant(probs, clf.class_names, malignant)
            figures[condition] = metrics.bootstrap_auc(part.malignant, p_mal, part.lesion_id, n_boot=n_boot)
        result['sets'][f'{source}/{split}'] = figures
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / 'robustness.json').write_text(json.dumps(result, indent=2) + '\n')
    return result


def summary_text(result: dict) -> str:
    lines = [f"robustness of model {result['model_version']} (AUC, 95% CI; change from clean)"]
    for name, figures in result['sets'].items():
        clean = figures['clean']['auc']
        lines.append(f'{name}:')
        for condition, fig in figures.items():
            lines.append(
                f"  {condition:<24} {fig['auc']:.3f} [{fig['ci95'][0]:.3f}, "
                f"{fig['ci95'][1]:.3f}]  {fig['auc'] - clean:+.3f}"
            )
    return '\n'.join(lines)
