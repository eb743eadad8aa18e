"""Classifier v2, second stage on a CPU: a lower cosine cycle from the end of `lite0_cpu`.

    python -m jax_models.cli train --config lite0_cpu_tail --init runs/lite0 \
        --data .data/pack128_3src.npz --out runs/lite0_tail

`lite0_cpu` stopped with val AUC still rising on all three sources; this continues from its
checkpoint (no new linear probe: the head is already trained) with new batches (another seed).
"""

from jax_models.configs import lite0_cpu


def get_config() -> dict:
    config = lite0_cpu.get_config()
    config.update(
        backbone_weights=None,
        linear_probe_steps=0,
        epochs=6,
        steps_per_epoch=200,
        learning_rate=1e-4,
        warmup_epochs=0.1,
        early_stopping_patience=6,
        seed=1,
    )
    return config
