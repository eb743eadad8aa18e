"""lite0_gpu without prevalence balancing: each source drawn with its own malignant share."""

from jax_models.configs import lite0_gpu


def get_config() -> dict:
    config = lite0_gpu.get_config()
    config.update(prevalence_balance=0.0)
    return config
