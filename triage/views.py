"""What each reader is shown of photos and triage: numbers for doctors, plain words for the patient.

Audiences: "patient" (the owner), "queue" (an approved doctor looking at a waiting case) and
"assigned" (the consultation's doctor, the only one who sees saliency overlays).
"""

from __future__ import annotations

from typing import Any

from triage import photo_gate, photo_quality, urgency_policy
from triage.policy import SCREENING_DISCLAIMER, patient_guidance

AUDIENCES = ("patient", "queue", "assigned")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def photo_view(row: dict[str, Any], audience: str) -> dict[str, Any]:
    photo_id = str(row["id"])
    view: dict[str, Any] = {
        "id": photo_id,
        "consultation_id": str(row["consultation_id"]),
        "body_site": row["body_site"],
        "tag": row["tag"],
        "width": row["width"],
        "height": row["height"],
        "sha256": row["sha256"],
        "status": row["status"],
        "created_at": _iso(row["created_at"]),
        "image_url": f"/api/v1/photos/{photo_id}/image",
        "thumbnail_url": f"/api/v1/photos/{photo_id}/thumbnail",
        "kind": row.get("kind", "unknown"),
        "quality": _quality_view(row.get("quality_problems")),
    }
    if audience == "patient":
        return view
    view["failure_reason"] = row["failure_reason"]
    view["quality"]["measures"] = row.get("quality")
    if row.get("model_version") is not None:
        view["score"] = {
            "p_malignant": row["p_malignant"],
            "urgency": row["urgency"],
            "dx": row["dx"],
            "probabilities": row["probabilities"],
            "model_version": row["model_version"],
            "scored_at": _iso(row["scored_at"]),
            # The photo gate's verdict, always beside the score.
            "gate": photo_gate.verdict_from(row).as_dict(),
        }
    if audience == "assigned" and row.get("has_saliency"):
        view["saliency_url"] = f"/api/v1/photos/{photo_id}/saliency"
    return view


def _quality_view(problems: list[str] | None) -> dict[str, Any]:
    """Quality problems with what to do about each (retake guidance); None problems: never measured."""
    if problems is None:
        return {"checked": False, "ok": None, "problems": [], "advice": []}
    return {
        "checked": True,
        "ok": not problems,
        "problems": list(problems),
        "advice": [photo_quality.PROBLEMS[p] for p in problems],
    }


def triage_view(
    summary: dict[str, Any] | None,
    status_counts: dict[str, int],
    audience: str,
    consultation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The consultation's triage: awaiting a score until one lands; failed photos never hide the case.

    With the consultation row, it carries the urgency policy's decision and why (plain words for the
    patient, short lines for doctors); `urgency` is then the case's band, not the photo's.
    """
    urgency = summary["urgency"] if summary else None
    # Only once nothing is left to try: while a photo is pending, a score may still come.
    failed = not summary and status_counts.get("failed", 0) > 0 and not status_counts.get("pending", 0)
    view: dict[str, Any] = {
        "awaiting_score": summary is None,
        "urgency": urgency,
        "photos": {status: status_counts.get(status, 0) for status in ("pending", "scored", "failed")},
        "disclaimer": SCREENING_DISCLAIMER,
    }
    explained = urgency_policy.explanation(consultation) if consultation is not None else None
    if explained is not None:
        view["urgency"] = explained["band"]
    if audience == "patient":
        # Words for the case's band (checklist and trusted score), never for an untrusted photo band.
        view["guidance"] = patient_guidance(explained["band"] if explained and summary else urgency, failed=failed)
        if explained is not None:
            view["explanation"] = explained["patient_words"]
        return view
    if explained is not None:
        view["reasons"] = explained["reasons"]
        view["image_band"] = urgency
    if summary:
        view.update(
            {
                "p_malignant": summary["p_malignant"],
                "probabilities": summary["probabilities"],
                "dx": summary["dx"],
                "model_version": summary["model_version"],
                "deciding_photo_id": str(summary["photo_id"]),
                "scored_at": _iso(summary["updated_at"]),
                "score_trusted": summary.get("trusted", False),
                "gate": summary.get("gate"),
            }
        )
    return view
