"""The served 96-px network distilled from the 112-px CPU run: the H200 checkpoint as the start,
the 112-px checkpoint as the teacher, a short low-rate cosine schedule.

    python -m jax_models.cli train --config cpu_distill --init jax_models/weights --teacher runs/cpu_112 \
        --synthetic runs/synthetic.npz --data .data/pack.npz --out runs/cpu_distill
"""

from jax_models.configs import gpu_long


def get_config() -> dict:
  config = gpu_long.get_config()
  config.update(batch_size=64, epochs=8, learning_rate=4e-4, warmup_epochs=0,
                early_stopping_patience=8, max_seconds=None, distill_alpha=0.5, distill_temperature=2.0)
  return config
