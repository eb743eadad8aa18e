"""A few steps on a handful of images: the test suite's end-to-end training run."""

from jax_models.configs import default


def get_config() -> dict:
    config = default.get_config()
    config.update(
        image_size=32,
        canvas=40,
        batch_size=8,
        epochs=2,
        eval_batch_size=16,
        early_stopping_patience=2,
        model={
            'block': 'basic',
            'stem': 8,
            'stem_stride': 2,
            'stages': [[8, 1, 2, 1], [16, 1, 2, 1]],
            'head': 16,
            'dropout': 0.0,
        },
    )
    return config
