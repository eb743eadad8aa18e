"""Running the classifier on stored photos and writing what it says, shared by the worker and `rescore`.

The model runs in a thread so the event loop keeps serving; a batch is cut into chunks no larger
than the classifier's biggest compiled batch size (it pads each chunk to a compiled size itself).
Stored photos are decoded at twice the model's input size, no more: preprocessing reduces a larger
photo to that first anyway. A photo the model cannot process fails alone: a failing chunk is
retried photo by photo.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from PIL import Image

from triage import bands
from triage.images import decode_for_model
from triage.policy import ConsultationTriage
from triage.store import saliency as saliency_store
from triage.store import scores as score_store

log = logging.getLogger(__name__)

# The overlay is drawn at the classifier's display size (384 px); decoding more is wasted.
SALIENCY_SIDE = 384


class Prediction(Protocol):
    p_malignant: float
    probabilities: dict[str, float]
    dx: str
    urgency: str
    model_version: str
    ood_score: float | None
    in_distribution: bool | None


class Classifier(Protocol):
    """What triage needs of `jax_models.serving.Classifier`."""

    version: str
    thresholds: dict[str, float]
    batch_sizes: tuple[int, ...]
    image_size: int

    def warmup(self) -> None: ...

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]: ...

    def explain(self, image: Image.Image) -> bytes: ...


@dataclass(frozen=True)
class PhotoToScore:
    photo_id: uuid.UUID
    consultation_id: uuid.UUID
    image: bytes


def _result(
    photo: PhotoToScore, model_version: str, batch_size: int, prediction: Any = None, failure: str | None = None
) -> score_store.PhotoResult:
    if failure is None and not (math.isfinite(prediction.p_malignant) and 0.0 <= prediction.p_malignant <= 1.0):
        failure = "the model produced no valid probability for this photo"
    if failure is not None:
        return score_store.PhotoResult(photo.photo_id, photo.consultation_id, model_version, failure=failure)
    return score_store.PhotoResult(
        photo.photo_id,
        photo.consultation_id,
        model_version,
        p_malignant=float(prediction.p_malignant),
        probabilities={k: float(v) for k, v in prediction.probabilities.items()},
        dx=prediction.dx,
        urgency=prediction.urgency,
        batch_size=batch_size,
        ood_score=getattr(prediction, "ood_score", None),
        in_distribution=getattr(prediction, "in_distribution", None),
    )


def _predict_chunk(classifier: Classifier, photos: Sequence[PhotoToScore]) -> list[score_store.PhotoResult]:
    """Runs in a worker thread: decode, predict, and isolate failures."""
    decoded: list[tuple[PhotoToScore, Image.Image]] = []
    results: list[score_store.PhotoResult] = []
    for photo in photos:
        try:
            decoded.append((photo, decode_for_model(photo.image, 2 * classifier.image_size)))
        except Exception as exc:  # noqa: BLE001 - stored bytes that no longer decode: fail this photo, not the batch
            # The exception's type, not its text: Pillow's messages name Python objects and their addresses.
            log.warning("stored photo unreadable", extra={"photo_id": str(photo.photo_id), "error": repr(exc)})
            results.append(
                _result(photo, classifier.version, 1, failure=f"stored image unreadable ({type(exc).__name__})")
            )
    if not decoded:
        return results
    try:
        predictions = classifier.predict([image for _, image in decoded])
        return results + [
            _result(photo, classifier.version, len(decoded), prediction)
            for (photo, _), prediction in zip(decoded, predictions, strict=True)
        ]
    except Exception:
        if len(decoded) == 1:
            photo = decoded[0][0]
            log.exception("classifier failed on a photo", extra={"photo_id": str(photo.photo_id)})
            return results + [_result(photo, classifier.version, 1, failure="the model could not process this photo")]
    log.warning("classifier failed on a batch; retrying photo by photo", extra={"batch": len(decoded)})
    for photo, _ in decoded:
        results += _predict_chunk(classifier, [photo])
    return results


async def predict_photos(classifier: Classifier, photos: Sequence[PhotoToScore]) -> list[score_store.PhotoResult]:
    largest = max(classifier.batch_sizes)
    results: list[score_store.PhotoResult] = []
    for start in range(0, len(photos), largest):
        results += await asyncio.to_thread(_predict_chunk, classifier, photos[start : start + largest])
    return results


async def write_results(
    pool: asyncpg.Pool,
    classifier: Classifier,
    results: Sequence[score_store.PhotoResult],
    on_scored: score_store.OnScored,
) -> list[ConsultationTriage]:
    async with pool.acquire() as conn:
        return await score_store.record_results_txn(
            conn, results, bands.for_thresholds(classifier.thresholds), on_scored
        )


async def store_saliency(pool: asyncpg.Pool, classifier: Classifier, photos: Sequence[PhotoToScore]) -> list[uuid.UUID]:
    """Draws and stores each photo's overlay; returns the photos the model could not explain."""
    failed = []
    for photo in photos:
        try:
            image = await asyncio.to_thread(decode_for_model, photo.image, SALIENCY_SIDE)
            png = await asyncio.to_thread(classifier.explain, image)
        except Exception:
            log.exception("saliency failed", extra={"photo_id": str(photo.photo_id)})
            failed.append(photo.photo_id)
            continue
        async with pool.acquire() as conn:
            await saliency_store.store_saliency(conn, photo.photo_id, classifier.version, png)
    return failed
