"""The lesion classifier network: a compact residual CNN in Flax NNX."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_models.efficientnet import EfficientNetLite0


class ConvBN(nnx.Module):
    """Convolution, batch norm and an optional ReLU6."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True, *, rngs: nnx.Rngs
    ):
        self.conv = nnx.Conv(
            cin,
            cout,
            (kernel, kernel),
            strides=(stride, stride),
            padding='SAME',
            feature_group_count=groups,
            use_bias=False,
            rngs=rngs,
        )
        self.bn = nnx.BatchNorm(cout, momentum=0.9, rngs=rngs)
        self.act = act

    def __call__(self, x):
        x = self.bn(self.conv(x))
        return jax.nn.relu6(x) if self.act else x


class InvertedResidual(nnx.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project, skip if shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, *, rngs: nnx.Rngs):
        hidden = cin * expand
        self.expand = ConvBN(cin, hidden, 1, rngs=rngs) if expand != 1 else None
        self.depthwise = ConvBN(hidden, hidden, 3, stride, groups=hidden, rngs=rngs)
        self.project = ConvBN(hidden, cout, 1, act=False, rngs=rngs)
        self.skip = stride == 1 and cin == cout

    def __call__(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


class BasicBlock(nnx.Module):
    """ResNet basic block: two 3x3 convolutions with a (projected) skip."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, *, rngs: nnx.Rngs):
        del expand
        self.conv1 = ConvBN(cin, cout, 3, stride, rngs=rngs)
        self.conv2 = ConvBN(cout, cout, 3, act=False, rngs=rngs)
        self.proj = ConvBN(cin, cout, 1, stride, act=False, rngs=rngs) if stride != 1 or cin != cout else None

    def __call__(self, x):
        skip = self.proj(x) if self.proj is not None else x
        return jax.nn.relu6(skip + self.conv2(self.conv1(x)))


BLOCKS = {'inverted_residual': InvertedResidual, 'basic': BasicBlock}


class LesionNet(nnx.Module):
    """Stem, stages of inverted residual blocks, global pooling, a linear head.

    `stages` lists (channels, blocks, first stride, expansion) per stage.
    """

    def __init__(
        self,
        num_classes: int,
        stem: int,
        stages: Sequence[Sequence[int]],
        head: int,
        dropout: float,
        block: str = 'basic',
        stem_stride: int = 2,
        *,
        rngs: nnx.Rngs,
    ):
        self.stem = ConvBN(3, stem, 3, stem_stride, rngs=rngs)
        block_cls = BLOCKS[block]
        blocks = []
        cin = stem
        for cout, n, stride, expand in stages:
            for i in range(n):
                blocks.append(block_cls(cin, cout, stride if i == 0 else 1, expand, rngs=rngs))
                cin = cout
        self.blocks = nnx.List(blocks) if hasattr(nnx, 'List') else blocks
        self.head_conv = ConvBN(cin, head, 1, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.classifier = nnx.Linear(head, num_classes, rngs=rngs)

    def features(self, x):
        """The last convolutional feature map (used by Grad-CAM)."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head_conv(x)

    def classify(self, fmap):
        return self.classifier(self.dropout(jnp.mean(fmap, axis=(1, 2))))

    def __call__(self, x):
        return self.classify(self.features(x))


def build_model(model_config: dict, num_classes: int, seed: int = 0) -> nnx.Module:
    """The network a checkpoint's `model` metadata describes (LesionNet unless it names an arch)."""
    if model_config.get('arch') == 'efficientnet_lite0':
        return EfficientNetLite0(
            num_classes, model_config['dropout'], model_config.get('frozen_blocks', 0), rngs=nnx.Rngs(seed)
        )
    return LesionNet(
        num_classes=num_classes,
        stem=model_config['stem'],
        stages=model_config['stages'],
        head=model_config['head'],
        dropout=model_config['dropout'],
        block=model_config.get('block', 'basic'),
        stem_stride=model_config.get('stem_stride', 2),
        rngs=nnx.Rngs(seed),
    )
