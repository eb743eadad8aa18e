"""Finishing stage 1's cut GPU schedule on a CPU: a short low-rate cosine tail.

    python -m jax_models.cli train --config cpu_finetune --init runs/stage1 \
        --synthetic runs/synthetic.npz --data .data/pack.npz --out runs/finetune
"""

from jax_models.configs import gpu_long


def get_config() -> dict:
    config = gpu_long.get_config()
    config.update(
        batch_size=64, epochs=8, learning_rate=4e-4, warmup_epochs=0, early_stopping_patience=8, max_seconds=None
    )
    return config
