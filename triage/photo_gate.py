"""The photo gate: may this photo's score be trusted? Quality, kind of photo, inside the model's training data.

Quality is measured at intake (triage/photo_quality.py, thresholds fitted on the training photos);
the kind comes from how the photo was taken, as the uploader says (the model card lists the kinds
the model is validated for: dermoscopic only); the out-of-distribution check runs with the model
(jax_models/ood.py, threshold stored in the checkpoint). A score is trusted only when all three pass.
Anything unknown — quality not measured, kind not stated, no statistics for this model — is not a
pass: the gate fails closed, and an untrusted score never moves a case down (triage/urgency_policy.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image

from triage import photo_quality

# The kinds the classifier is validated for (docs/model-card.md, "Input it was built for").
VALIDATED_KINDS = ("dermoscopic",)
# The uploader's tag -> the kind of photo. No tag: the kind is unknown, which is not validated.
KIND_BY_TAG = {"dermoscopic": "dermoscopic", "close_up": "camera_close_up", "overview": "camera_overview"}
KIND_WORDS = {
    "dermoscopic": "dermoscopic",
    "camera_close_up": "camera photo",
    "camera_overview": "camera overview",
    "unknown": "kind of photo not stated",
}
REASON_WORDS = {
    "quality_unchecked": "quality not checked",
    "kind_not_validated": "",  # worded by the kind itself
    "out_of_distribution": "unlike the photos the model was trained on",
    "ood_unavailable": "no training-range check for this model",
    **{code: code.replace("_", " ") for code in photo_quality.PROBLEMS},
}


@dataclass(frozen=True)
class QualityReport:
    measures: dict[str, float]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class GateVerdict:
    kind: str
    quality_problems: tuple[str, ...] | None  # None: never measured
    in_distribution: bool | None  # None: the model has no statistics
    ood_score: float | None = None

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the score is not trusted (empty when it is), most actionable first."""
        reasons: list[str] = []
        if self.quality_problems is None:
            reasons.append("quality_unchecked")
        else:
            reasons += self.quality_problems
        if self.kind not in VALIDATED_KINDS:
            reasons.append("kind_not_validated")
        if self.in_distribution is None:
            reasons.append("ood_unavailable")
        elif not self.in_distribution:
            reasons.append("out_of_distribution")
        return tuple(reasons)

    @property
    def trusted(self) -> bool:
        return not self.reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "trusted": self.trusted,
            "kind": self.kind,
            "reasons": list(self.reasons),
            "quality_problems": None if self.quality_problems is None else list(self.quality_problems),
            "in_distribution": self.in_distribution,
            "ood_score": None if self.ood_score is None else round(self.ood_score, 2),
            "summary": summary(self),
        }


def kind_of(tag: str | None) -> str:
    return KIND_BY_TAG.get(tag or "", "unknown")


@lru_cache(maxsize=1)
def quality_thresholds() -> dict:
    return photo_quality.load_thresholds()


def check_quality(image: Image.Image) -> QualityReport:
    measures = photo_quality.measure(image)
    return QualityReport(measures.as_dict(), tuple(photo_quality.problems(measures, quality_thresholds())))


def verdict_from(row: dict[str, Any]) -> GateVerdict:
    """The verdict of a stored photo and its score (columns kind, quality_problems, in_distribution, ood_score)."""
    problems = row.get("quality_problems")
    return GateVerdict(
        kind=row.get("kind") or "unknown",
        quality_problems=None if problems is None else tuple(problems),
        in_distribution=row.get("in_distribution"),
        ood_score=row.get("ood_score"),
    )


def _reason_words(verdict: GateVerdict, reasons: Sequence[str]) -> list[str]:
    return [
        KIND_WORDS.get(verdict.kind, verdict.kind) if r == "kind_not_validated" else REASON_WORDS.get(r, r)
        for r in reasons
    ]


def summary(verdict: GateVerdict) -> str:
    """For doctors, beside the score: "dermoscopic, in range" or "not used: camera photo, blurred"."""
    if verdict.trusted:
        return f"{KIND_WORDS[verdict.kind]}, in range"
    return "not used: " + ", ".join(_reason_words(verdict, verdict.reasons))
