"""Starting a fine-tune from ImageNet: the pretrained backbone and a linear-probe head.

A randomly initialised head sends large, noisy gradients into the pretrained
backbone for the first few hundred steps; a head fitted first on the frozen
backbone's pooled features (a class-weighted logistic regression) starts the
whole-network fine-tune from a sensible classifier instead.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jax_models import augment, data, pretrained
from jax_models.preprocess import to_model_input


@partial(nnx.jit, static_argnames=('size',))
def _pooled(model, canvases, *, size):
    images = to_model_input(augment.resize_batch(canvases, size))
    return model.pooled(model.features(images))


def pooled_features(model, canvases: np.ndarray, size: int, batch: int) -> np.ndarray:
    """Pooled last-layer features of prepared canvases, in fixed-size batches."""
    return np.concatenate(
        [
            np.asarray(_pooled(model, jnp.asarray(chunk), size=size))[:n]
            for chunk, n in data.padded_batches(canvases, batch)
        ]
    )


def fit_linear_head(
    features: np.ndarray,
    labels: np.ndarray,
    class_weights: np.ndarray,
    num_classes: int,
    steps: int,
    weight_decay: float,
) -> tuple:
    """Class-weighted multinomial logistic regression by full-batch Adam; (kernel, bias)."""
    x = jnp.asarray(features, jnp.float32)
    y = jnp.asarray(labels)
    w = jnp.asarray(class_weights)[y]
    params = {'kernel': jnp.zeros((x.shape[1], num_classes)), 'bias': jnp.zeros(num_classes)}
    opt = optax.adam(1e-2)

    def loss(p):
        logits = x @ p['kernel'] + p['bias']
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return jnp.sum(ce * w) / jnp.sum(w) + weight_decay * jnp.sum(p['kernel'] ** 2)

    @jax.jit
    def run(params):
        def step(carry, _):
            p, state = carry
            grads = jax.grad(loss)(p)
            updates, state = opt.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return params

    params = run(params)
    return np.asarray(params['kernel']), np.asarray(params['bias'])


def initialise(
    model, config: dict, train_images: np.ndarray, train_labels: np.ndarray, class_weights: np.ndarray
) -> dict:
    """ImageNet backbone from `config['backbone_weights']`, then (if `linear_probe_steps`)
    the head from a linear probe on the train canvases. Returns what was done, for the record."""
    pretrained.load_backbone(model, config['backbone_weights'])
    record = {'backbone_weights': str(config['backbone_weights'])}
    steps = config.get('linear_probe_steps', 0)
    if steps:
        model.eval()
        feats = pooled_features(model, train_images, config['image_size'], config['eval_batch_size'])
        model.train()
        kernel, bias = fit_linear_head(
            feats, train_labels, class_weights, len(class_weights), steps, config['linear_probe_weight_decay']
        )
        model.classifier.kernel[...] = jnp.asarray(kernel)
        model.classifier.bias[...] = jnp.asarray(bias)
        record.update(linear_probe_steps=steps, linear_probe_images=len(train_images))
    return record
