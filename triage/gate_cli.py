"""`skindoc gate fit-quality | evaluate`: fitting the photo gate's quality limits, and measuring the gate."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_fit_quality(args: argparse.Namespace) -> int:
    from triage import gate_fit

    result = gate_fit.fit_quality(args.data)
    counts = ", ".join(f"{name} {n}" for name, n in result["fitted_on"].items())
    print(f"quality limits from {counts} training photos (quantile {result['quantile']}):")
    for name, value in result["limits"].items():
        print(f"  {name:20} {value}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from jax_models.serving import load_classifier
    from triage import gate_evaluate

    classifier = load_classifier(args.weights)
    report = gate_evaluate.evaluate(classifier, args.data, args.non_lesion)
    for name, rates in report["good"].items():
        print(
            f"{name:22} pass {rates['passed']:.1%} of {rates['n']} "
            f"(quality flags {rates['quality_flagged']:.1%}, out of range {rates['ood_flagged']:.1%})"
        )
    for name, rates in report["degraded"].items():
        own = rates["by_problem"].get(name, 0)
        print(f"{name:22} flagged {rates['flagged']:.1%} of {rates['n']} (by its own check {own:.1%})")
    if "non_lesion" in report:
        rates = report["non_lesion"]
        print(f"{'non-lesion images':22} flagged {rates['flagged']:.1%} of {rates['n']}")
    if args.out:
        gate_evaluate.save(report, args.out)
        print(f"written to {args.out}")
    return 0


def register(subparsers) -> None:
    gate = subparsers.add_parser("gate", help="fit and measure the photo gate (quality, kind, training range)")
    sub = gate.add_subparsers(dest="gate_command", required=True)
    fit = sub.add_parser(
        "fit-quality",
        help="fit the quality limits on the training photos",
        description="Writes triage/quality_thresholds.json from the train splits.",
    )
    fit.add_argument("--data", required=True, action="append", help="labelled folder (labels.csv + images/)")
    fit.set_defaults(func=cmd_fit_quality)
    evaluate = sub.add_parser("evaluate", help="pass rates on good photos, flag rates on bad and non-lesion ones")
    evaluate.add_argument("--data", required=True, action="append", help="labelled folder; repeatable")
    evaluate.add_argument("--non-lesion", type=Path, help="folder of images that are not skin lesions")
    evaluate.add_argument("--weights", help="checkpoint folder (default: the shipped one)")
    evaluate.add_argument("--out", type=Path, help="write the full report as JSON here")
    evaluate.set_defaults(func=cmd_evaluate)
