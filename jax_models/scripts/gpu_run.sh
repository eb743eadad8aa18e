#!/usr/bin/env bash
# Classifier v2 on a lent GPU: the lite0_gpu arms trained side by side on one card.
# Usage (repository root): jax_models/scripts/gpu_run.sh OUT_DIR EPOCHS PACK [PACK ...]
# Needs .data/efficientnet_lite0_imagenet.npz (python -m jax_models.pretrained) and the packs
# (python -m jax_models.data OUT.npz DIR --canvas 128). If this code does not import under the
# machine's own flax/optax, wheels of ours in .whl/ are installed and tried instead.
# Each arm comes back as OUT_DIR/<arm>.tgz (final checkpoint + train_log.jsonl); choosing an arm
# (on val) and evaluating it happen afterwards: docs/model-card.md, "Classifier v2".
set -u
OUT_DIR=${1:?out dir}; EPOCHS=${2:?epochs}; shift 2
PACKS=(); for p in "$@"; do PACKS+=(--data "$p"); done
ARMS=${ARMS:-lite0_gpu_plain lite0_gpu lite0_gpu_balanced}
export PYTHONUNBUFFERED=1 PYTHONPATH=.:${PYTHONPATH:-}
# The arms share the card: each takes a slice of its memory instead of JAX's default 75 %.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM_FRACTION:-0.25}
PY=${PY:-python3}
WORK=${WORK:-/tmp/arms}
mkdir -p "$WORK" "$OUT_DIR"
check() { $PY -c "from jax_models import train, configs; import flax, optax, jax; \
print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"; }
{
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
  if ! check && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=.:/tmp/site:${PYTHONPATH:-} && check
  fi
  for arm in $ARMS; do
    $PY -m jax_models.cli train --config "$arm" --epochs "$EPOCHS" --quiet "${PACKS[@]}" \
        --out "$WORK/$arm" > "$WORK/$arm.log" 2>&1 &
  done
  wait
  for arm in $ARMS; do
    echo "== $arm"; tail -n 8 "$WORK/$arm.log"
    tar -C "$WORK/$arm" --exclude=best_so_far --exclude=last_epoch -czf "$OUT_DIR/$arm.tgz" .
  done
} 2>&1 | tee "$OUT_DIR/log.txt"
ls -la "$OUT_DIR"
