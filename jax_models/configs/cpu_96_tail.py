"""Bringing the 112-px CPU run back to the served 96-px input: a short low-rate tail at 96 px.

    python -m jax_models.cli train --config cpu_96_tail --init runs/cpu_112 \
        --synthetic runs/synthetic.npz --data .data/pack.npz --out runs/cpu_96_tail
"""

from jax_models.configs import gpu_long


def get_config() -> dict:
  config = gpu_long.get_config()
  config.update(batch_size=64, epochs=4, learning_rate=3e-4, warmup_epochs=0,
                early_stopping_patience=4, max_seconds=None)
  return config
