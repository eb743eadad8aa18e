"""lite0_gpu with every source drawn at the pooled malignant share (ISIC 2020's 28 melanomas ~11x)."""

from jax_models.configs import lite0_gpu


def get_config() -> dict:
    config = lite0_gpu.get_config()
    config.update(prevalence_balance=1.0)
    return config
