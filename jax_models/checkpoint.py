"""Checkpoint I/O: `weights.msgpack` (the network's state) + `metadata.json` (everything else)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jax_models.models import build_model

WEIGHTS_FILE = 'weights.npz'
METADATA_FILE = 'metadata.json'
# What a checkpoint holds: learned parameters and batch-norm statistics, no RNG state.
SAVED = (nnx.Param, nnx.BatchStat)
SHIPPED_DIR = Path(__file__).resolve().parent / 'weights'


def flatten(tree, prefix=''):
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            yield from flatten(value, name + '/')
        else:
            yield name, value


def unflatten(flat) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = [int(k) if k.isdigit() else k for k in name.split('/')]
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    return tree


def saved_weights(model: nnx.Module) -> dict:
    """What a checkpoint holds (weights and batch statistics) as a plain dict of arrays."""
    return nnx.to_pure_dict(nnx.state(model, SAVED))


def load_weights(model: nnx.Module, weights: dict) -> None:
    """Puts `saved_weights` of a model of the same shape into `model`."""
    state = nnx.state(model, SAVED)
    nnx.replace_by_pure_dict(state, weights)
    nnx.update(model, state)


def weights_bytes(model: nnx.Module, dtype: str = 'float32') -> bytes:
    """The learned state as an uncompressed npz, one array per 'path/to/variable'.

    `dtype` 'float16' halves the file (a 4 M-parameter network ships in ~8 MB);
    loading casts back to float32, so calibration done after a float16 save is exact.
    """
    flat = {name: np.asarray(v, np.float32).astype(dtype) for name, v in flatten(saved_weights(model))}
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return buf.getvalue()


def content_version(weights: bytes, metadata: dict) -> str:
    """Model version: a hash of the weights and of what changes their meaning."""
    h = hashlib.sha256(weights)
    # Thresholds too: a recalibration that moves only them changes which band a score falls in.
    for key in ('image_size', 'class_names', 'temperature', 'thresholds', 'logit_bias', 'model'):
        h.update(json.dumps(metadata.get(key), sort_keys=True).encode())
    return h.hexdigest()[:16]


def save(directory: str | Path, model: nnx.Module, metadata: dict) -> dict:
    """Writes the checkpoint; returns the metadata with its `version` filled in."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = weights_bytes(model, metadata.get('weights_dtype', 'float32'))
    metadata = dict(metadata, version=content_version(blob, metadata))
    (directory / WEIGHTS_FILE).write_bytes(blob)
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + '\n')
    return metadata


def read_metadata(directory: str | Path) -> dict:
    return json.loads((Path(directory) / METADATA_FILE).read_text())


def load(directory: str | Path | None = None) -> tuple[nnx.Module, dict]:
    """The network (in eval mode) and its metadata."""
    directory = Path(directory) if directory is not None else SHIPPED_DIR
    metadata = read_metadata(directory)

    # Abstract construction (shapes only, nothing initialised), already in eval mode.
    def abstract():
        model = build_model(metadata['model'], len(metadata['class_names']))
        model.eval()
        return model

    model = nnx.eval_shape(abstract)
    with np.load(directory / WEIGHTS_FILE) as z:
        load_weights(model, unflatten({k: jax.device_put(z[k].astype(np.float32)) for k in z.files}))
    # What is not saved (dropout's RNG) still holds shapes only: give it values.
    rng = nnx.state(model, nnx.Not(SAVED))
    nnx.update(model, jax.tree.map(_concrete, rng))
    return model, metadata


def _concrete(leaf):
    """A zero value for an abstract leaf, made without compiling anything."""
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(jax.device_put(np.zeros((2,), np.uint32)))
    return jax.device_put(np.zeros(leaf.shape, leaf.dtype))
