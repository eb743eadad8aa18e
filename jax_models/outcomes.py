"""A checkpoint on a clinic's own confirmed cases (a `skindoc outcomes export` folder): its
figures, and a recalibration of the temperature and the urgency thresholds written as a NEW
checkpoint version.

The export uses the training data's layout, but its `dx` may be `scc` or `other` (not classes of
the network) and its `malignant` column is the histopathology's word, so only the
malignant-vs-benign figures are computed. Calibration fits on the `val` rows only; `test` rows
are held out and reported before and after. Only the checkpoint API is used (load, save,
metadata: class names, malignant classes, temperature, thresholds, version), so this works for
whichever network the checkpoint holds.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from jax_models import checkpoint, evaluation, metrics
from jax_models.evaluate import serving_logits
from jax_models.serving import Classifier, load_classifier

DEFAULT_URGENT_SENSITIVITY = 0.95
DEFAULT_SOON_SENSITIVITY = 0.99
# Fewer confirmed malignant val cases than this give thresholds that one case can move: refuse.
DEFAULT_MIN_MALIGNANT = 20
# A fitted temperature outside this range means the cases cannot support a fit (cleanly separated
# ones drive it towards 0, pushing every score to 0 or 1 and the thresholds to 1): refuse rather
# than ship such a checkpoint.
TEMPERATURE_RANGE = (0.25, 4.0)


@dataclass
class Outcomes:
    paths: list[Path]
    lesion_id: np.ndarray
    malignant: np.ndarray
    split: np.ndarray
    source: str

    def subset(self, split: str) -> Outcomes:
        keep = self.split == split
        return Outcomes(
            [p for p, k in zip(self.paths, keep, strict=True) if k],
            self.lesion_id[keep],
            self.malignant[keep],
            self.split[keep],
            self.source,
        )

    def __len__(self):
        return len(self.paths)


def read_outcomes(folder) -> Outcomes:
    folder = Path(folder)
    with open(folder / 'labels.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    return Outcomes(
        paths=[folder / 'images' / f"{r['image_id']}.jpg" for r in rows],
        lesion_id=np.array([r['lesion_id'] for r in rows]),
        malignant=np.array([int(r['malignant']) for r in rows], np.int32),
        split=np.array([r['split'] for r in rows]),
        source=folder.name,
    )


def p_malignant_at(clf: Classifier, logits: np.ndarray, temperature: float) -> np.ndarray:
    probs = metrics.softmax(np.asarray(logits, np.float64) / temperature)
    return evaluation.p_malignant(probs, clf.class_names, clf.metadata['malignant_classes'])


def figures(part: Outcomes, p_mal: np.ndarray, thresholds: dict, n_boot: int) -> dict:
    y = part.malignant
    one_class = y.all() or not y.any()
    return {
        'n': len(part),
        'n_malignant': int(y.sum()),
        'n_lesions': len(set(part.lesion_id.tolist())),
        'auc_malignant': (None if one_class else metrics.bootstrap_auc(y, p_mal, part.lesion_id, n_boot=n_boot)),
        'operating_points': {band: metrics.sens_spec_at(y, p_mal, t) for band, t in thresholds.items()},
        'ece_malignant': metrics.binary_ece(y, p_mal),
        'reliability': metrics.reliability(y, p_mal, 10),
    }


def _sensitivity_targets(metadata: dict) -> tuple[float, float]:
    """The band targets the checkpoint was calibrated to (every calibration keeps them), else the
    defaults."""
    previous = metadata.get('calibration') or {}
    config = (metadata.get('training') or {}).get('config') or {}
    urgent = config.get('urgent_sensitivity', DEFAULT_URGENT_SENSITIVITY)
    soon = config.get('soon_sensitivity', DEFAULT_SOON_SENSITIVITY)
    return (previous.get('urgent_sensitivity_target', urgent), previous.get('soon_sensitivity_target', soon))


def fit(clf: Classifier, part: Outcomes, logits: np.ndarray) -> tuple[float, dict]:
    """Temperature (binary NLL of p_malignant) and thresholds for the target sensitivities, on
    these cases."""
    names = clf.class_names
    positive = [names.index(c) for c in clf.metadata['malignant_classes']]
    benign = next(i for i in range(len(names)) if i not in positive)
    # The binary NLL only asks whether a label is among `positive`: any class of the right side
    # stands in.
    labels = np.where(part.malignant == 1, positive[0], benign)
    temperature = metrics.fit_temperature(logits, labels, positive)
    if not TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]:
        raise ValueError(
            f'the fitted temperature {temperature:.3f} is outside {TEMPERATURE_RANGE}: '
            'these cases are too few or too cleanly separated to calibrate on; '
            'nothing was written'
        )
    urgent, soon = _sensitivity_targets(clf.metadata)
    p_mal = p_malignant_at(clf, logits, temperature)
    thresholds = evaluation.thresholds_from(part.malignant, p_mal, urgent, soon)
    return temperature, thresholds


def evaluate_outcomes(
    folder, weights=None, n_boot: int = 2000, save_to=None, min_malignant: int = DEFAULT_MIN_MALIGNANT
) -> dict:
    """Figures of `weights` on each split of the export; with `save_to`, also recalibrates on val
    and writes the new checkpoint there, with the figures of both on every split."""
    outcomes = read_outcomes(folder)
    clf = load_classifier(weights)
    parts = {s: outcomes.subset(s) for s in ('val', 'test') if (outcomes.split == s).any()}
    logits = {s: serving_logits(clf, part.paths) for s, part in parts.items()}

    def sets(temperature: float, thresholds: dict) -> dict:
        return {
            f'{outcomes.source}/{s}': figures(part, p_malignant_at(clf, logits[s], temperature), thresholds, n_boot)
            for s, part in parts.items()
        }

    result = {
        'model_version': clf.version,
        'temperature': clf.temperature,
        'thresholds': clf.thresholds,
        'sets': sets(clf.temperature, clf.thresholds),
    }
    if save_to is None:
        return result
    found = int(parts['val'].malignant.sum()) if 'val' in parts else 0
    if found < min_malignant:
        raise ValueError(
            f'calibration needs at least {min_malignant} confirmed malignant val cases; the export has {found}'
        )
    temperature, thresholds = fit(clf, parts['val'], logits['val'])
    val_p_mal = p_malignant_at(clf, logits['val'], temperature)
    new = save_recalibrated(weights, save_to, parts['val'], val_p_mal, temperature, thresholds)
    result['recalibrated'] = {
        'model_version': new['version'],
        'path': str(save_to),
        'temperature': temperature,
        'thresholds': thresholds,
        'sets': sets(temperature, thresholds),
    }
    return result


def save_recalibrated(
    weights, save_to, val: Outcomes, val_p_mal: np.ndarray, temperature: float, thresholds: dict
) -> dict:
    """The parent's network with the new temperature and thresholds, as a new checkpoint with its
    provenance."""
    save_to = Path(save_to)
    if (save_to / checkpoint.METADATA_FILE).exists():
        raise FileExistsError(f'{save_to} already holds a checkpoint: a recalibration goes into a new folder')
    model, metadata = checkpoint.load(weights)
    urgent, soon = _sensitivity_targets(metadata)
    parent = metadata.pop('version')
    metadata.update(temperature=temperature, thresholds=thresholds)
    metadata['calibration'] = {
        'fitted_on': (f'clinic outcomes export {val.source!r}, val split (histopathology-confirmed cases)'),
        'source': 'outcomes',
        'parent_version': parent,
        'fitted_at': datetime.now(UTC).isoformat(),
        'n': len(val),
        'n_malignant': int(val.malignant.sum()),
        'n_lesions': len(set(val.lesion_id.tolist())),
        'temperature': temperature,
        'thresholds': thresholds,
        'val_operating_points': {
            band: metrics.sens_spec_at(val.malignant, val_p_mal, t) for band, t in thresholds.items()
        },
        'urgent_sensitivity_target': urgent,
        'soon_sensitivity_target': soon,
        'previous': metadata.get('calibration'),
    }
    saved = checkpoint.save(save_to, model, metadata)
    # Same weights, so the parent's out-of-distribution statistics still hold: carry them over.
    parent_dir = Path(weights) if weights is not None else checkpoint.SHIPPED_DIR
    if metadata.get('ood') and (parent_dir / metadata['ood']['file']).exists():
        shutil.copyfile(parent_dir / metadata['ood']['file'], save_to / metadata['ood']['file'])
    return saved


def summary_text(result: dict) -> str:
    lines = [
        f"model {result['model_version']} (T={result['temperature']:.3f}, thresholds "
        f"{_thresholds(result['thresholds'])})"
    ]
    lines += [_set_line(name, fig) for name, fig in result['sets'].items()]
    new = result.get('recalibrated')
    if new:
        lines.append(
            f"recalibrated -> checkpoint {new['model_version']} in {new['path']} "
            f"(T={new['temperature']:.3f}, thresholds {_thresholds(new['thresholds'])})"
        )
        lines += [_set_line(name, fig) for name, fig in new['sets'].items()]
    return '\n'.join(lines)


def _thresholds(thresholds: dict) -> str:
    return ', '.join(f'{band} >= {t:.4f}' for band, t in thresholds.items())


def _set_line(name: str, fig: dict) -> str:
    auc = fig['auc_malignant']
    auc_text = (
        'AUC n/a (one class)'
        if auc is None
        else f"AUC {auc['auc']:.3f} (95% CI {auc['ci95'][0]:.3f}-{auc['ci95'][1]:.3f})"
    )
    urgent = fig['operating_points']['urgent']
    return (
        f"  {name}: n={fig['n']} ({fig['n_malignant']} malignant, "
        f"{fig['n_lesions']} lesions), {auc_text}; "
        f"urgent sens {urgent['sensitivity']:.3f} spec {urgent['specificity']:.3f}; "
        f"ECE {fig['ece_malignant']:.3f}"
    )
