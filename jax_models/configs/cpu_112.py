"""Stage 1 (the H200 checkpoint) continued on a CPU at 112 px, with a full cosine schedule.

    python -m jax_models.cli train --config cpu_112 --init runs/stage1 \
        --synthetic runs/synthetic.npz --data .data/pack128.npz --out runs/cpu_112
"""

from jax_models.configs import gpu_long


def get_config() -> dict:
    config = gpu_long.get_config()
    config.update(
        image_size=112,
        canvas=128,
        batch_size=64,
        epochs=14,
        learning_rate=1e-3,
        warmup_epochs=1,
        early_stopping_patience=14,
        max_seconds=None,
    )
    return config
