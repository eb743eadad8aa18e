"""Classifier v2 on a lent GPU: the lite0_cpu recipe, six times the images, source prevalence half-balanced.

    jax_models/scripts/gpu_run.sh OUT EPOCHS .data/pack128_ham.npz .data/pack128_isic.npz

Same network, input size and augmentation as lite0_cpu (so serving costs the
same); the card buys a longer schedule at a larger batch, and room to train the
prevalence arms (lite0_gpu_plain, lite0_gpu_balanced) side by side.
"""

from jax_models.configs import lite0_cpu


def get_config() -> dict:
    config = lite0_cpu.get_config()
    config.update(
        batch_size=128,
        epochs=24,
        steps_per_epoch=100,
        learning_rate=4e-4,
        warmup_epochs=1,
        max_seconds=900,  # a guard: the epochs are sized to the lease, the cosine schedule should finish
        eval_batch_size=256,
        prevalence_balance=0.5,
    )
    return config
