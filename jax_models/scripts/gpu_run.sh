#!/usr/bin/env bash
# The lent-GPU run: GAN + with/without-GAN ablation + the shipped model + the GPU benchmark.
# Usage (repository root): jax_models/scripts/gpu_run.sh OUT_DIR [PACK] [extra experiment args]
# Carries: .data (the pack) and .whl (our flax/optax wheels, in case the machine's differ).
set -u
OUT_DIR=${1:?out dir}; PACK=${2:-.data/pack.npz}; shift 2 || shift $#
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=.:${PYTHONPATH:-}
WORK=/tmp/experiment
mkdir -p "$WORK" "$OUT_DIR"
{ nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
  $PY -c "import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())"
  timeout ${EXPERIMENT_TIMEOUT:-430} $PY -m jax_models.experiment --data "$PACK" --out "$WORK" "$@"
  echo "experiment rc=$?"
  if [ -d "$WORK/shipped" ]; then
    timeout ${BENCH_TIMEOUT:-60} $PY bench/inference.py --weights "$WORK/shipped" --seconds 2 \
        --latency-runs 300 --json "$WORK/bench_gpu.json"
    echo "bench rc=$?"
  fi
} 2>&1 | tee "$OUT_DIR/log.txt"
tar -C "$WORK" --exclude=synthetic.npz -czf "$OUT_DIR/experiment.tgz" .
ls -la "$OUT_DIR"
