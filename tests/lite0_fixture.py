"""A seeded random EfficientNet-Lite0 state dict under the original (PyTorch) names.

Pure numpy (and the block table, which imports nothing), so the same weights can be
rebuilt in the tests and in the throwaway torch environment that wrote
tests/fixtures/lite0/reference.npz (see tests/fixtures/lite0/make_reference.py):
the port is checked against PyTorch without the wheel, torch or the ImageNet weights.
"""

import numpy as np

from jax_models.lite0_blocks import HEAD, STAGES, STEM

NUM_CLASSES = 7
SEED = 11


def _conv(rng, sd, name, cout, cin, k):
    std = np.sqrt(2.0 / (cin * k * k))
    sd[f'{name}.weight'] = (rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32)


def _bn(rng, sd, name, c):
    sd[f'{name}.weight'] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    sd[f'{name}.bias'] = rng.normal(0, 0.1, c).astype(np.float32)
    sd[f'{name}.running_mean'] = rng.normal(0, 0.1, c).astype(np.float32)
    sd[f'{name}.running_var'] = rng.uniform(0.5, 2.0, c).astype(np.float32)


def state_dict(seed: int = SEED) -> dict:
    rng = np.random.default_rng(seed)
    sd = {}
    _conv(rng, sd, '_conv_stem', STEM, 3, 3)
    _bn(rng, sd, '_bn0', STEM)
    i, cin = 0, STEM
    for expand, k, _, cout, repeats in STAGES:
        for _ in range(repeats):
            p, hidden = f'_blocks.{i}', cin * expand
            if expand != 1:
                _conv(rng, sd, f'{p}._expand_conv', hidden, cin, 1)
                _bn(rng, sd, f'{p}._bn0', hidden)
            sd[f'{p}._depthwise_conv.weight'] = (
                rng.standard_normal((hidden, 1, k, k)) * np.sqrt(2.0 / (k * k))
            ).astype(np.float32)
            _bn(rng, sd, f'{p}._bn1', hidden)
            _conv(rng, sd, f'{p}._project_conv', cout, hidden, 1)
            _bn(rng, sd, f'{p}._bn2', cout)
            i, cin = i + 1, cout
    _conv(rng, sd, '_conv_head', HEAD, cin, 1)
    _bn(rng, sd, '_bn1', HEAD)
    sd['_fc.weight'] = (rng.standard_normal((NUM_CLASSES, HEAD)) * 0.02).astype(np.float32)
    sd['_fc.bias'] = rng.normal(0, 0.1, NUM_CLASSES).astype(np.float32)
    return sd


def inputs() -> dict:
    """Two images each at 40 px (strides reach odd sizes: 5 -> 3 -> 2) and 33 px."""
    rng = np.random.default_rng(SEED + 1)
    return {f'input_{s}': rng.uniform(-1, 1, (2, s, s, 3)).astype(np.float32) for s in (40, 33)}
