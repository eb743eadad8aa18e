"""The block table of EfficientNet-Lite0: the one copy the JAX port, the PyTorch reference and the test fixture read.

Imports nothing (keep it so): `jax_models/scripts/lite0_torch_reference.py` reads it in a throwaway
environment that has only torch and numpy.
"""

BN_EPSILON = 1e-3
STEM, HEAD = 32, 1280
# (expansion, kernel, stride, output channels, repeats) per stage: EfficientNet-B0.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
