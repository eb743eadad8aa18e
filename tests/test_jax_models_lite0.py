"""The EfficientNet-Lite0 port: fast convolutions, the torch-file reader, PyTorch's logits."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_models import checkpoint, efficientnet, pretrained
from jax_models.models import build_model
from tests import lite0_fixture

FIXTURES = Path(__file__).parent / 'fixtures' / 'lite0'


@pytest.mark.parametrize('size,kernel,stride', [(8, 3, 1), (8, 3, 2), (9, 5, 2), (7, 5, 1), (5, 3, 2)])
def test_depthwise_as_slices_equals_xla_grouped_convolution(size, kernel, stride):
    rng = np.random.default_rng(size * kernel + stride)
    x = jnp.asarray(rng.standard_normal((2, size, size + 1, 4)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((kernel, kernel, 4)), jnp.float32)
    expected = jax.lax.conv_general_dilated(
        x, w[:, :, None, :], (stride, stride), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=4
    )
    got = efficientnet.depthwise(x, w, stride)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_pointwise_is_a_1x1_convolution():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 3, 5, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((6, 4)), jnp.float32)
    np.testing.assert_allclose(efficientnet.pointwise(x, w), jnp.einsum('nhwc,cd->nhwd', x, w), atol=1e-5)


def test_tf_same_padding_puts_the_odd_pixel_after():
    assert efficientnet.same_padding(128, 3, 2) == (0, 1)
    assert efficientnet.same_padding(32, 5, 2) == (1, 2)
    assert efficientnet.same_padding(7, 5, 1) == (2, 2)


def test_legacy_torch_file_is_read_without_torch():
    sd = pretrained.read_torch_legacy((FIXTURES / 'legacy_state.pth').read_bytes())
    np.testing.assert_array_equal(sd['w'], np.arange(12, dtype=np.float32).reshape(3, 4).T)
    np.testing.assert_array_equal(sd['b'], [1.5, -2.0])
    assert sd['n'] == 7 and sd['n'].dtype == np.int64
    assert sd['h'].dtype == np.float16 and list(sd['h']) == [0.5, 0.25]


def test_the_reader_refuses_anything_but_tensors():
    import pickle

    blob = b''.join(pickle.dumps(x, protocol=2) for x in (1, 1001, {})) + pickle.dumps(
        {'x': __import__('os').getcwd}, protocol=2
    )
    with pytest.raises(pickle.UnpicklingError):
        pretrained.read_torch_legacy(blob)


def test_the_wrong_file_is_refused(tmp_path):
    (tmp_path / 'other.pth').write_bytes(b'not the weights')
    with pytest.raises(ValueError, match='sha256'):
        pretrained.read_source(tmp_path / 'other.pth')


def converted_model():
    model = build_model({'arch': 'efficientnet_lite0', 'dropout': 0.2}, lite0_fixture.NUM_CLASSES)
    weights = pretrained.convert(lite0_fixture.state_dict())
    checkpoint.load_weights(model, checkpoint.unflatten(weights))
    model.eval()
    return model


def test_converted_network_gives_pytorchs_logits():
    """Renaming, layouts, TF padding, BatchNorm epsilon and input scaling, all at once."""
    model = converted_model()
    forward = nnx.jit(lambda m, x: m(x))  # compiled: op by op, the network takes minutes
    with np.load(FIXTURES / 'reference.npz') as ref:
        for name, x in lite0_fixture.inputs().items():
            expected = ref[name.replace('input', 'logits')]
            assert np.abs(expected).max() > 0.1  # a live network, not all zeros
            np.testing.assert_allclose(np.asarray(forward(model, jnp.asarray(x))), expected, atol=1e-4)


def test_backbone_loading_keeps_the_new_head(tmp_path):
    path = tmp_path / 'imagenet.npz'
    np.savez(path, **pretrained.convert(lite0_fixture.state_dict()))
    model = build_model({'arch': 'efficientnet_lite0', 'dropout': 0.2}, 3)
    head = np.asarray(model.classifier.kernel[...]).copy()
    pretrained.load_backbone(model, path)
    assert model.classifier.kernel[...].shape == (1280, 3)
    np.testing.assert_array_equal(model.classifier.kernel[...], head)
    stem = lite0_fixture.state_dict()['_conv_stem.weight'].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.stem_kernel[...], stem)


def test_features_and_classify_split_the_network():
    model = converted_model()
    x = jnp.asarray(lite0_fixture.inputs()['input_33'])
    fmap = nnx.jit(lambda m, x: m.features(x))(model, x)
    assert fmap.shape == (2, 2, 2, 1280)
    with np.load(FIXTURES / 'reference.npz') as ref:
        np.testing.assert_allclose(model.classify(fmap), ref['logits_33'], atol=1e-4)
