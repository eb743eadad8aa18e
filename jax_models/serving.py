"""Serving: load a checkpoint once, compile one executable per batch bucket, score photos.

    clf = load_classifier()          # the shipped jax_models/weights/
    clf.warmup()                     # compiles every bucket up front
    clf.predict([pil_image, ...])    # -> [Prediction, ...]
    clf.explain(pil_image)           # -> PNG bytes: Grad-CAM overlay

Each prediction carries the photo's out-of-distribution score (jax_models/ood.py) when the checkpoint
holds statistics fitted on its weights; the pooled features come out of the same compiled call.

The score is a screening aid for ordering a queue, never a diagnosis.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from jax_models import bands, checkpoint, ood
from jax_models.preprocess import preprocess, to_rgb

DEFAULT_BATCH_SIZES = (1, 8, 32, 64)


@dataclass(frozen=True)
class Prediction:
    p_malignant: float
    probabilities: dict[str, float]
    dx: str
    urgency: str
    model_version: str
    # Squared Mahalanobis distance to the training features, and whether it is under the fitted
    # threshold; both None when the checkpoint has no statistics for its weights.
    ood_score: float | None = None
    in_distribution: bool | None = None


class Classifier:
    """A loaded checkpoint with fixed-bucket compiled executables."""

    def __init__(
        self,
        model,
        metadata: dict,
        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
        ood_statistics: ood.OodStatistics | None = None,
    ):
        self.metadata = metadata
        self.ood = ood_statistics
        self.version: str = metadata['version']
        self.class_names: list[str] = list(metadata['class_names'])
        self.thresholds: dict[str, float] = dict(metadata['thresholds'])
        # The band of a score (jax_models/bands.py): the same order triage's policy and the queue use.
        self.bands = bands.from_metadata(metadata)
        self.batch_sizes: tuple[int, ...] = tuple(sorted(batch_sizes))
        self.image_size: int = int(metadata['image_size'])
        self.temperature = float(metadata['temperature'])
        self._bias = jnp.asarray(metadata['logit_bias'], jnp.float32)
        self._malignant = jnp.asarray([c in metadata['malignant_classes'] for c in self.class_names], jnp.float32)
        self._graphdef, self._state = nnx.split(model)
        self._executables: dict = {}
        self._explain_executable = None
        self._lock = threading.Lock()
        self.compile_count = 0

    # --- the jitted functions -------------------------------------------------
    def _forward(self, state, x):
        """Probabilities and the globally pooled last feature map (for the out-of-distribution score)."""
        model = nnx.merge(self._graphdef, state)
        fmap = model.features(x)
        logits = model.classify(fmap)
        probs = jax.nn.softmax((logits + self._bias) / self.temperature, axis=-1)
        return probs, jnp.mean(fmap, axis=(1, 2))

    def _cam(self, state, x):
        """Grad-CAM for log p_malignant on the last feature map; returns (cam, probs)."""
        model = nnx.merge(self._graphdef, state)
        fmap = model.features(x)

        def log_p_malignant(f):
            probs = jax.nn.softmax((model.classify(f) + self._bias) / self.temperature, axis=-1)
            return jnp.log(jnp.sum(probs * self._malignant) + 1e-8), probs

        grads, probs = jax.grad(log_p_malignant, has_aux=True)(fmap)
        weights = grads.mean(axis=(1, 2), keepdims=True)
        cam = jax.nn.relu(jnp.sum(weights * fmap, axis=-1))[0]
        return cam / (cam.max() + 1e-8), probs[0]

    def _compile(self, fn, batch: int):
        spec = jax.ShapeDtypeStruct((batch, self.image_size, self.image_size, 3), jnp.float32)
        executable = jax.jit(fn).lower(self._state, spec).compile()
        self.compile_count += 1
        return executable

    def _executable(self, bucket: int):
        exe = self._executables.get(bucket)
        if exe is None:
            with self._lock:
                exe = self._executables.get(bucket)
                if exe is None:
                    exe = self._executables[bucket] = self._compile(self._forward, bucket)
        return exe

    def warmup(self) -> None:
        """Compiles every batch bucket and the explanation path; later calls never compile."""
        for b in self.batch_sizes:
            self._executable(b)
        self._explainer()

    def _bucket(self, n: int) -> int:
        for b in self.batch_sizes:
            if b >= n:
                return b
        return self.batch_sizes[-1]

    # --- public API -----------------------------------------------------------
    def predict_arrays_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed float32 N x S x S x 3 -> (N x classes probabilities, N x features pooled), any N."""
        probs, features = [], []
        largest = self.batch_sizes[-1]
        for start in range(0, len(batch), largest):
            chunk = batch[start : start + largest]
            bucket = self._bucket(len(chunk))
            padded = np.zeros((bucket,) + chunk.shape[1:], np.float32)
            padded[: len(chunk)] = chunk
            p, f = self._executable(bucket)(self._state, padded)
            probs.append(np.asarray(p)[: len(chunk)])
            features.append(np.asarray(f)[: len(chunk)])
        if not probs:
            return np.zeros((0, len(self.class_names)), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(probs), np.concatenate(features)

    def predict_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed float32 N x S x S x 3 -> N x classes probabilities (any N)."""
        return self.predict_arrays_with_features(batch)[0]

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        if not images:
            return []
        batch = np.stack([preprocess(im, self.image_size) for im in images])
        probs, features = self.predict_arrays_with_features(batch)
        scores = self.ood.scores(features) if self.ood is not None else [None] * len(probs)
        return [self._prediction(p, s) for p, s in zip(probs, scores, strict=True)]

    def _prediction(self, probs: np.ndarray, ood_score: float | None = None) -> Prediction:
        probs = probs.astype(np.float64)
        probs = probs / probs.sum()
        malignant = self.metadata['malignant_classes']
        p_mal = float(sum(p for c, p in zip(self.class_names, probs, strict=True) if c in malignant))
        return Prediction(
            p_malignant=p_mal,
            probabilities={c: float(p) for c, p in zip(self.class_names, probs, strict=True)},
            dx=self.class_names[int(np.argmax(probs))],
            urgency=self.bands.band_for(p_mal),
            model_version=self.version,
            ood_score=None if ood_score is None else float(ood_score),
            in_distribution=None if ood_score is None else bool(ood_score <= self.ood.threshold),
        )

    def _explainer(self):
        if self._explain_executable is None:
            with self._lock:
                if self._explain_executable is None:
                    self._explain_executable = self._compile(self._cam, 1)
        return self._explain_executable

    def explain(self, image: Image.Image, display_size: int = 384) -> bytes:
        """PNG of the photo with a Grad-CAM heat map for p_malignant laid over it."""
        x = preprocess(image, self.image_size)[None]
        cam, _ = self._explainer()(self._state, x)
        photo = to_rgb(image)
        scale = display_size / max(photo.size)
        size = (max(1, round(photo.size[0] * scale)), max(1, round(photo.size[1] * scale)))
        photo = photo.resize(size, Image.BILINEAR)
        heat = Image.fromarray((np.asarray(cam) * 255).astype(np.uint8)).resize(size, Image.BICUBIC)
        overlay = Image.fromarray(_colour_map(np.asarray(heat, np.float32) / 255.0))
        alpha = Image.fromarray((np.asarray(heat, np.float32) * 0.6).astype(np.uint8))
        blended = Image.composite(overlay, photo, alpha)
        buf = io.BytesIO()
        blended.save(buf, format='PNG')
        return buf.getvalue()


def _colour_map(v: np.ndarray) -> np.ndarray:
    """Blue -> cyan -> yellow -> red for v in [0, 1]."""
    r = np.clip(2.0 * v - 0.5, 0, 1)
    g = np.clip(1.5 - np.abs(4.0 * v - 2.0), 0, 1)
    b = np.clip(1.0 - 2.0 * v, 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def load_classifier(
    weights_dir: str | Path | None = None, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
) -> Classifier:
    """The classifier of `weights_dir` (None: the shipped jax_models/weights/)."""
    model, metadata = checkpoint.load(weights_dir)
    directory = weights_dir if weights_dir is not None else checkpoint.SHIPPED_DIR
    return Classifier(model, metadata, batch_sizes, ood.load(directory, metadata))
