"""The shipped classifier as trained on a lent GPU: same network, longer schedule, bigger batch."""

from jax_models.configs import default


def get_config() -> dict:
    config = default.get_config()
    config.update(
        batch_size=128, epochs=100, learning_rate=3e-3, warmup_epochs=2, early_stopping_patience=20, max_seconds=150
    )
    return config
