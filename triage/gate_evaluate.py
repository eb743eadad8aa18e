"""`skindoc gate evaluate`: the photo gate's evidence for the model card.

Three questions, each answered through the server's own code (photo_quality.measure, the thresholds
file, the classifier's out-of-distribution score):
  - good dermoscopy (val and test splits): what share passes?            aim >= 99 %
  - the same photos made bad (blur, dark, bright, tiny): what share is flagged?   aim >= 95 %
  - images that are not skin lesions at all: what share is flagged?      aim >= 95 %
Dermoscopic photos are evaluated as declared dermoscopic: the kind comes from the uploader.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from triage import gate_data, photo_gate, photo_quality

BATCH = 64


def _verdicts(classifier, images: Sequence[Image.Image]) -> list[photo_gate.GateVerdict]:
    """The gate's verdict on each image, as if uploaded as dermoscopic."""
    thresholds = photo_gate.quality_thresholds()
    verdicts = []
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        predictions = classifier.predict(chunk)
        for image, prediction in zip(chunk, predictions, strict=True):
            problems = tuple(photo_quality.problems(photo_quality.measure(image), thresholds))
            verdicts.append(
                photo_gate.GateVerdict("dermoscopic", problems, prediction.in_distribution, prediction.ood_score)
            )
    return verdicts


def _rates(verdicts: Sequence[photo_gate.GateVerdict]) -> dict:
    n = len(verdicts)
    return {
        "n": n,
        "passed": round(sum(v.trusted for v in verdicts) / n, 4),
        "quality_flagged": round(sum(bool(v.quality_problems) for v in verdicts) / n, 4),
        "ood_flagged": round(sum(v.in_distribution is False for v in verdicts) / n, 4),
        "by_problem": {
            p: round(sum(p in (v.quality_problems or ()) for v in verdicts) / n, 4) for p in photo_quality.PROBLEMS
        },
    }


def _over_paths(
    classifier, paths: Sequence[Path], degrade: Callable[[Image.Image], Image.Image] | None = None
) -> list[photo_gate.GateVerdict]:
    verdicts = []
    for start in range(0, len(paths), BATCH):
        images = [gate_data.open_rgb(p) for p in paths[start : start + BATCH]]
        verdicts += _verdicts(classifier, [degrade(im) for im in images] if degrade else images)
    return verdicts


def evaluate(classifier, data_dirs: Sequence[str | Path], non_lesion_dir: Path | None) -> dict:
    folders = [Path(d) for d in data_dirs]
    report: dict = {
        "model_version": classifier.version,
        "ood_threshold": classifier.ood and classifier.ood.threshold,
        "quality_limits": photo_gate.quality_thresholds()["limits"],
        "good": {},
        "degraded": {},
    }
    val_paths = []
    for folder in folders:
        for split in ("val", "test"):
            paths = gate_data.split_paths(folder, [split])
            if paths:
                report["good"][f"{folder.name}-{split}"] = _rates(_over_paths(classifier, paths))
        val_paths += gate_data.split_paths(folder, ["val"])
    for name, degrade in gate_data.DEGRADATIONS.items():
        rates = _rates(_over_paths(classifier, val_paths, degrade))
        report["degraded"][name] = {**rates, "flagged": round(1 - rates["passed"], 4)}
    if non_lesion_dir is not None:
        paths = sorted(p for p in non_lesion_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        verdicts = _over_paths(classifier, paths)
        report["non_lesion"] = {
            **_rates(verdicts),
            "flagged": round(1 - _rates(verdicts)["passed"], 4),
            "images": {p.name: photo_gate.summary(v) for p, v in zip(paths, verdicts, strict=True)},
        }
    return report


def save(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
