"""EfficientNet-Lite0 in Flax NNX, written for speed on a CPU.

The architecture of Google's EfficientNet-Lite0 (EfficientNet-B0 without
squeeze-excitation, ReLU6, fixed 32-channel stem and 1280-channel head), laid
out so its ImageNet weights (converted by `jax_models.scripts.convert_lite0`)
reproduce the original network:
- TF 'SAME' padding: a stride-2 convolution pads the extra pixel after, not
  symmetrically;
- BatchNorm epsilon 1e-3;
- input (pixel - 127) / 128 (the network converts the project's [-1, 1] input).

Speed: XLA's CPU depthwise convolution ran at ~10 img/s here, so depthwise
convolutions are sums of shifted (strided) slices and 1x1 convolutions are
matrix multiplies; the whole network then runs ~20x faster on a CPU.

BatchNorm statistics are frozen (fine-tuning on a few thousand images at batch
64 would only add noise to ImageNet's): they are `nnx.BatchStat` variables that
are saved with the checkpoint but never trained.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jax_models.lite0_blocks import BN_EPSILON, HEAD, STAGES, STEM


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME': output ceil(size / stride); the odd pixel of padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x, kernel: int, stride: int):
    ph = same_padding(x.shape[1], kernel, stride)
    pw = same_padding(x.shape[2], kernel, stride)
    return jnp.pad(x, ((0, 0), ph, pw, (0, 0)))


def depthwise(x, kernel, stride: int):
    """Depthwise convolution (TF SAME) as a sum of k*k shifted, strided slices.

    x: N x H x W x C, kernel: k x k x C.
    """
    k = kernel.shape[0]
    n, h, w, c = x.shape
    ho, wo = -(-h // stride), -(-w // stride)
    xp = _pad_same(x, k, stride)
    out = None
    for i in range(k):
        for j in range(k):
            tap = jax.lax.slice(
                xp, (0, i, j, 0), (n, i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1, c), (1, stride, stride, 1)
            )
            term = tap * kernel[i, j]
            out = term if out is None else out + term
    return out


def pointwise(x, kernel):
    """1x1 convolution as one matrix multiply. kernel: Cin x Cout."""
    n, h, w, c = x.shape
    return (x.reshape(n * h * w, c) @ kernel).reshape(n, h, w, kernel.shape[1])


class FrozenBatchNorm(nnx.Module):
    """Inference-mode BatchNorm: learned scale and bias, fixed (ImageNet) statistics."""

    def __init__(self, channels: int):
        self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((channels,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((channels,), jnp.float32))

    def __call__(self, x):
        mult = self.scale[...] * jax.lax.rsqrt(self.var[...] + BN_EPSILON)
        return x * mult + (self.bias[...] - self.mean[...] * mult)


class Pointwise(nnx.Module):
    """1x1 convolution + BatchNorm (+ ReLU6)."""

    def __init__(self, cin: int, cout: int, act: bool, *, rngs: nnx.Rngs):
        init = nnx.initializers.he_normal()
        self.kernel = nnx.Param(init(rngs.params(), (cin, cout), jnp.float32))
        self.bn = FrozenBatchNorm(cout)
        self.act = act

    def __call__(self, x):
        x = self.bn(pointwise(x, self.kernel[...]))
        return jax.nn.relu6(x) if self.act else x


class Depthwise(nnx.Module):
    """k x k depthwise convolution + BatchNorm + ReLU6."""

    def __init__(self, channels: int, kernel: int, stride: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.variance_scaling(2.0, 'fan_in', 'normal', in_axis=(0, 1), out_axis=2)
        self.kernel = nnx.Param(init(rngs.params(), (kernel, kernel, channels), jnp.float32))
        self.bn = FrozenBatchNorm(channels)
        self.stride = stride

    def __call__(self, x):
        return jax.nn.relu6(self.bn(depthwise(x, self.kernel[...], self.stride)))


class MBConv(nnx.Module):
    """Inverted residual without squeeze-excitation: expand, depthwise, project, skip."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, *, rngs: nnx.Rngs):
        hidden = cin * expand
        self.expand = Pointwise(cin, hidden, True, rngs=rngs) if expand != 1 else None
        self.depthwise = Depthwise(hidden, kernel, stride, rngs=rngs)
        self.project = Pointwise(hidden, cout, False, rngs=rngs)
        self.skip = stride == 1 and cin == cout

    def __call__(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


class EfficientNetLite0(nnx.Module):
    """Backbone + pooled linear head, with LesionNet's `features` / `classify` split."""

    def __init__(self, num_classes: int, dropout: float, frozen_blocks: int = 0, *, rngs: nnx.Rngs):
        init = nnx.initializers.he_normal()
        # Training only: no gradient reaches the stem and the first `frozen_blocks` blocks
        # (ImageNet's edge and texture filters), which also skips their share of the
        # backward pass, the costliest part at full resolution.
        self.frozen_blocks = frozen_blocks
        self.stem_kernel = nnx.Param(init(rngs.params(), (3, 3, 3, STEM), jnp.float32))
        self.stem_bn = FrozenBatchNorm(STEM)
        blocks, cin = [], STEM
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1, rngs=rngs))
                cin = cout
        self.blocks = nnx.List(blocks) if hasattr(nnx, 'List') else blocks
        self.head_conv = Pointwise(cin, HEAD, True, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.classifier = nnx.Linear(HEAD, num_classes, rngs=rngs)

    def stem(self, x):
        x = _pad_same(x, 3, 2)
        x = jax.lax.conv_general_dilated(
            x, self.stem_kernel[...], (2, 2), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
        )
        return jax.nn.relu6(self.stem_bn(x))

    def features(self, x):
        """The last feature map (1280 channels, stride 32). x: the project's [-1, 1] input."""
        # [-1, 1] -> pixel values -> the original network's (pixel - 127) / 128.
        x = (x * 127.5 + 0.5) * (1.0 / 128.0)
        x = self.stem(x)
        if self.frozen_blocks:
            x = jax.lax.stop_gradient(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i + 1 == self.frozen_blocks:
                x = jax.lax.stop_gradient(x)
        return self.head_conv(x)

    def pooled(self, fmap):
        return jnp.mean(fmap, axis=(1, 2))

    def classify(self, fmap):
        return self.classifier(self.dropout(self.pooled(fmap)))

    def __call__(self, x):
        return self.classify(self.features(x))
