"""The shipped classifier's final GPU run: the gpu recipe, twice the epochs, one arm."""

from jax_models.configs import gpu


def get_config() -> dict:
    config = gpu.get_config()
    config.update(epochs=200, early_stopping_patience=40, max_seconds=200)
    return config
