"""What each reader is shown of photos and triage: numbers for doctors, plain words for the patient.

Audiences: "patient" (the owner), "queue" (an approved doctor looking at a waiting case) and
"assigned" (the consultation's doctor, the only one who sees saliency overlays).
"""
from __future__ import annotations

from typing import Any

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
    }
    if audience == "patient":
        return view
    view["failure_reason"] = row["failure_reason"]
    if row.get("model_version") is not None:
        view["score"] = {
            "p_malignant": row["p_malignant"],
            "urgency": row["urgency"],
            "dx": row["dx"],
            "probabilities": row["probabilities"],
            "model_version": row["model_version"],
            "scored_at": _iso(row["scored_at"]),
        }
    if audience == "assigned" and row.get("has_saliency"):
        view["saliency_url"] = f"/api/v1/photos/{photo_id}/saliency"
    return view


def triage_view(summary: dict[str, Any] | None, status_counts: dict[str, int], audience: str) -> dict[str, Any]:
    """The consultation's triage: awaiting a score until one lands; failed photos never hide the case."""
    urgency = summary["urgency"] if summary else None
    # Only once nothing is left to try: while a photo is pending, a score may still come.
    failed = not summary and status_counts.get("failed", 0) > 0 and not status_counts.get("pending", 0)
    view: dict[str, Any] = {
        "awaiting_score": summary is None,
        "urgency": urgency,
        "photos": {status: status_counts.get(status, 0) for status in ("pending", "scored", "failed")},
        "disclaimer": SCREENING_DISCLAIMER,
    }
    if audience == "patient":
        view["guidance"] = patient_guidance(urgency, failed=failed)
        return view
    if summary:
        view.update({
            "p_malignant": summary["p_malignant"],
            "probabilities": summary["probabilities"],
            "dx": summary["dx"],
            "model_version": summary["model_version"],
            "deciding_photo_id": str(summary["photo_id"]),
            "scored_at": _iso(summary["updated_at"]),
        })
    return view
