"""Bringing the 112-px CPU run back to a 96-px input: the CPU cosine tail, shorter and lower.

    python -m jax_models.cli train --config cpu_96_tail --init runs/cpu_112 \
        --synthetic runs/synthetic.npz --data .data/pack.npz --out runs/cpu_96_tail
"""

from jax_models.configs import cpu_finetune


def get_config() -> dict:
    config = cpu_finetune.get_config()
    config.update(epochs=4, learning_rate=3e-4, early_stopping_patience=4)
    return config
