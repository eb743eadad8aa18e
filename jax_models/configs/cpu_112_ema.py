"""Stage 2 of the shipped model: cpu_112 with a moving average of the weights (3.5 epochs).

    python -m jax_models.cli train --config cpu_112_ema --init runs/stage1 \
        --synthetic runs/synthetic.npz --data .data/pack128.npz --out runs/cpu_112_ema
"""

from jax_models.configs import cpu_112


def get_config() -> dict:
    config = cpu_112.get_config()
    config.update(ema_decay=0.998)
    return config
