"""`evaluate`: a checkpoint's figures on labelled photos, through the serving path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from jax_models import checkpoint, data, evaluation, metrics, plots
from jax_models.preprocess import preprocess
from jax_models.serving import Classifier, load_classifier


def preprocessed_batches(clf: Classifier, paths, batch: int = 64):
    """The photos at `paths`, preprocessed for `clf` as serving does, `batch` at a time."""
    for start in range(0, len(paths), batch):
        arrays = []
        for path in paths[start : start + batch]:
            with Image.open(path) as im:
                arrays.append(preprocess(im, clf.image_size))
        yield np.stack(arrays)


def serving_logits(clf: Classifier, paths, batch: int = 64) -> np.ndarray:
    """Calibrated-model logits (prior-corrected, at T=1, up to a per-row constant)."""
    out = []
    for arrays in preprocessed_batches(clf, paths, batch):
        probs = clf.predict_arrays(arrays)
        out.append(clf.temperature * np.log(np.maximum(probs, 1e-30)))
    return np.concatenate(out)


def refit_calibration(weights_dir, logits: np.ndarray, part: data.Records) -> dict:
    """Refits temperature and thresholds on these (val) logits; rewrites the checkpoint."""
    model, metadata = checkpoint.load(weights_dir)
    temperature = evaluation.fit_temperature(logits, part.label, metadata['class_names'], metadata['malignant_classes'])
    probs = evaluation.adjusted_probs(logits, np.zeros(logits.shape[1]), temperature, bias=True)
    p_mal = evaluation.p_malignant(probs, metadata['class_names'], metadata['malignant_classes'])
    cfg = metadata['training']['config']
    thresholds = evaluation.thresholds_from(part.malignant, p_mal, cfg['urgent_sensitivity'], cfg['soon_sensitivity'])
    metadata.pop('version')
    metadata.update(temperature=temperature, thresholds=thresholds)
    metadata['calibration'] = {
        'fitted_on': f'{part.source[0]} val through the serving path (jax_models.preprocess)',
        'n': len(part),
        'temperature': temperature,
        'thresholds': thresholds,
        'val_operating_points': {
            band: metrics.sens_spec_at(part.malignant, p_mal, t) for band, t in thresholds.items()
        },
        'urgent_sensitivity_target': cfg['urgent_sensitivity'],
        'soon_sensitivity_target': cfg['soon_sensitivity'],
    }
    return checkpoint.save(weights_dir or checkpoint.SHIPPED_DIR, model, metadata)


def evaluate(
    data_dir, split: str = 'test', weights=None, out=None, recalibrate: bool = False, n_boot: int = 2000
) -> dict:
    """Figures per source folder of `data_dir` on `split`; plots and JSON into `out`."""
    if recalibrate and split != 'val':
        raise ValueError('--calibrate fits on val only: never tune on test')
    clf = load_classifier(weights)
    sets = {}
    for folder in data.source_dirs(data_dir):
        part = data.read_folder(folder).subset(split=split)
        if len(part):
            sets[f'{folder.name}/{split}'] = (part, serving_logits(clf, part.paths))
    if recalibrate:
        key = f'{evaluation.CALIBRATION_SOURCE}/val'
        if key not in sets:
            raise ValueError(f'--calibrate needs {evaluation.CALIBRATION_SOURCE} val images')
        refit_calibration(weights, sets[key][1], sets[key][0])
        clf = load_classifier(weights)
    meta = clf.metadata
    figures = {}
    for name, (part, logits) in sets.items():
        figures[name] = evaluation.report(
            part.label,
            part.malignant,
            part.lesion_id,
            logits,
            meta['logit_bias'],
            clf.temperature,
            clf.class_names,
            meta['malignant_classes'],
            clf.thresholds,
            n_boot=n_boot,
        )
    result = {
        'model_version': clf.version,
        'split': split,
        'temperature': clf.temperature,
        'thresholds': clf.thresholds,
        'sets': figures,
    }
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / 'figures.json').write_text(json.dumps(result, indent=2) + '\n')
        curves = {}
        for name, (part, logits) in sets.items():
            probs = evaluation.adjusted_probs(logits, np.zeros(logits.shape[1]), clf.temperature, bias=True)
            p_mal = evaluation.p_malignant(probs, clf.class_names, meta['malignant_classes'])
            fpr, tpr, _ = metrics.roc_curve(part.malignant, p_mal)
            curves[f"{name} (AUC {figures[name]['auc_malignant']['auc']:.3f})"] = (fpr, tpr)
        plots.roc_plot(curves, f'ROC, malignant vs benign ({split})').save(out / 'roc.png')
        for name, fig in figures.items():
            safe = name.replace('/', '_')
            plots.reliability_plot(
                {
                    'network as trained': fig['reliability_before'],
                    f'calibrated (prior-corrected, T={clf.temperature:.2f})': fig['reliability_after'],
                },
                f'Reliability of p_malignant, {name}',
            ).save(out / f'reliability_{safe}.png')
    return result


def summary_text(name: str, fig: dict) -> str:
    auc = fig['auc_malignant']
    sens80 = fig['sensitivity_at_specificity_80']['sensitivity']
    sens90 = fig['sensitivity_at_specificity_90']['sensitivity']
    spec95 = fig['specificity_at_sensitivity_95']['specificity']
    points = ', '.join(
        f"{band} >= {p['threshold']:.3f}: sens {p['sensitivity']:.3f} spec {p['specificity']:.3f}"
        for band, p in fig['operating_points'].items()
    )
    lines = [
        f"{name}: n={fig['n']} ({fig['n_malignant']} malignant, {fig['n_lesions']} lesions)",
        (
            f"  AUC malignant vs benign {auc['auc']:.3f} "
            f"(95% CI {auc['ci95'][0]:.3f}-{auc['ci95'][1]:.3f}, lesion bootstrap)"
        ),
        (
            f'  sensitivity at 80% specificity {sens80:.3f}, at 90% {sens90:.3f}; '
            f'specificity at 95% sensitivity {spec95:.3f}'
        ),
        f'  operating points: {points}',
        (
            f"  ECE(p_malignant): network as trained {fig['ece_malignant_before']:.3f}, "
            f"prior-corrected T=1 {fig['ece_malignant_prior_corrected_t1']:.3f}, "
            f"calibrated {fig['ece_malignant_after']:.3f}; top-label ECE "
            f"{fig['ece_top_label_before']:.3f} -> {fig['ece_top_label_after']:.3f}"
        ),
        (f"  balanced accuracy (classes present: {', '.join(fig['classes_present'])}) {fig['balanced_accuracy']:.3f}"),
    ]
    if 'auc_melanoma_vs_rest_p_mel' in fig:
        lines.append(f"  AUC melanoma vs rest (P(mel)) {fig['auc_melanoma_vs_rest_p_mel']:.3f}")
    return '\n'.join(lines)
