"""Training library: loss, jitted train/eval steps, and `train_and_evaluate(config, workdir)`."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from jax_models import augment, checkpoint, data, evaluation, finetune, provenance
from jax_models.models import build_model
from jax_models.preprocess import to_model_input
from jax_models.sampling import class_weights, sampling_probabilities


def loss_fn(model, images, labels, class_weights):
    logits = model(images)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    weights = class_weights[labels]
    return jnp.sum(losses * weights) / jnp.sum(weights), logits


@partial(nnx.jit, static_argnames=('size', 'aug_cfg'))
def train_step(model, optimizer, pool, pool_labels, idx, key, class_weights, *, size, aug_cfg):
    """One update on the pool images at `idx`, augmented on the device."""
    images = augment.augment_batch(key, pool[idx], size, dict(aug_cfg))
    labels = pool_labels[idx]
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
    (loss, _), grads = grad_fn(model, to_model_input(images), labels, class_weights)
    optimizer.update(model, grads)
    return loss


def distillation_loss_fn(model, images, labels, class_weights, teacher_logits, alpha, tau):
    """(1 - alpha) x the weighted label loss + alpha x tau^2 x KL(teacher || student) at temperature tau."""
    label_loss, logits = loss_fn(model, images, labels, class_weights)
    soft_targets = jax.nn.softmax(teacher_logits / tau)
    kl = optax.kl_divergence(jax.nn.log_softmax(logits / tau), soft_targets)
    return (1 - alpha) * label_loss + alpha * tau**2 * jnp.mean(kl), logits


@partial(nnx.jit, static_argnames=('size', 'teacher_size', 'aug_cfg', 'alpha', 'tau'))
def distill_step(
    model, optimizer, teacher, pool, pool_labels, idx, key, class_weights, *, size, teacher_size, aug_cfg, alpha, tau
):
    """train_step, plus a teacher's soft targets: the teacher sees the augmented crop at its own
    (larger) input size, the student the same crop resized to its size."""
    crops = augment.augment_batch(key, pool[idx], teacher_size, dict(aug_cfg))
    teacher_logits = jax.lax.stop_gradient(teacher(to_model_input(crops)))
    images = augment.resize_batch(crops, size) if teacher_size != size else crops
    grad_fn = nnx.value_and_grad(distillation_loss_fn, has_aux=True)
    (loss, _), grads = grad_fn(
        model, to_model_input(images), pool_labels[idx], class_weights, teacher_logits, alpha, tau
    )
    optimizer.update(model, grads)
    return loss


@partial(nnx.jit, static_argnames=('size',))
def eval_step(model, canvases, *, size):
    """Logits for prepared uint8 canvases, resized to the model input."""
    return model(to_model_input(augment.resize_batch(canvases, size)))


def predict_logits(model, canvases: np.ndarray, size: int, batch: int) -> np.ndarray:
    """Logits in fixed-size batches (the last one padded) so nothing recompiles."""
    model.eval()
    out = []
    for chunk, n in data.padded_batches(canvases, batch):
        out.append(np.asarray(eval_step(model, jnp.asarray(chunk), size=size))[:n])
    model.train()
    return np.concatenate(out) if out else np.zeros((0, 7), np.float32)


def make_step(config: dict, size: int, aug_cfg: tuple):
    """The update function: plain, or distilling from `config['teacher']` (a checkpoint folder)."""
    if not config.get('teacher'):
        return partial(train_step, size=size, aug_cfg=aug_cfg)
    teacher, meta = checkpoint.load(config['teacher'])
    if meta['class_names'] != list(config['class_names']):
        raise ValueError('the teacher was trained on other classes')
    if meta['image_size'] > config['canvas']:
        raise ValueError(f"teacher input {meta['image_size']} px is larger than the canvas {config['canvas']}")
    distill = partial(
        distill_step,
        size=size,
        teacher_size=meta['image_size'],
        aug_cfg=aug_cfg,
        alpha=config['distill_alpha'],
        tau=config['distill_temperature'],
    )
    return lambda model, optimizer, *rest: distill(model, optimizer, teacher, *rest)


@jax.jit
def ema_update(average, current, decay):
    """One step of an exponential moving average of the weights (and batch statistics)."""
    return jax.tree.map(lambda a, c: decay * a + (1 - decay) * c, average, current)


def val_aucs(model, val: data.Records, config: dict, weights: np.ndarray) -> dict:
    """Malignant-vs-benign AUC of the prior-corrected scores on each source's val images."""
    classes, aucs = list(config['class_names']), {}
    for s in sorted(set(val.source)):
        part = val.subset(source=s)
        logits = predict_logits(model, part.images, config['image_size'], config['eval_batch_size'])
        p_mal = evaluation.p_malignant(evaluation.adjusted_probs(logits, weights, 1.0), classes, config['malignant'])
        aucs[str(s)] = evaluation.metrics_auc(part.malignant, p_mal)
    return aucs


def parent_record(meta: dict) -> dict:
    """What a continued run started from: the parent checkpoint's version and how it was trained."""
    training = {k: v for k, v in meta.get('training', {}).items() if k != 'history'}
    return {'version': meta['version'], 'training': training}


def load_synthetic(path: str | Path, canvas: int):
    with np.load(path) as z:
        images, labels = z['images'], z['label'].astype(np.int32)
    if images.shape[1] != canvas:
        images = np.asarray(
            jax.image.resize(jnp.asarray(images, jnp.float32), (len(images), canvas, canvas, 3), 'linear')
        )
        images = np.clip(images + 0.5, 0, 255).astype(np.uint8)
    return images, labels


def selection_score(aucs: dict, weights: dict) -> float:
    num = sum(weights[s] * a for s, a in aucs.items() if s in weights and np.isfinite(a))
    den = sum(weights[s] for s, a in aucs.items() if s in weights and np.isfinite(a))
    return num / den if den else float('nan')


def train_and_evaluate(
    config: dict, workdir: str | Path, records: data.Records | None = None, progress: bool = True
) -> dict:
    """Trains, selects the best epoch on val, calibrates, writes a checkpoint to `workdir`.

    `config['data']` (a pack .npz or labelled folder(s)) is read unless
    `records` is given. Returns the checkpoint metadata.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    size, canvas = config['image_size'], config['canvas']
    classes = list(config['class_names'])
    num_classes = len(classes)
    if records is None:
        records = data.concat([data.load(d, canvas) for d in config['data']])
    if records.images.shape[1] != canvas:
        raise ValueError(f'data canvas {records.images.shape[1]} != config canvas {canvas}')
    train = records.subset(split='train')
    val = records.subset(split='val')

    weights = class_weights(train.label, num_classes, config['class_weight_power'])
    probs = sampling_probabilities(train, config['source_weights'], config.get('prevalence_balance', 0.0))
    pool, pool_labels = train.images, train.label
    n_real = len(pool)
    synthetic_fraction = 0.0
    if config.get('synthetic'):
        syn_images, syn_labels = load_synthetic(config['synthetic'], canvas)
        pool = np.concatenate([pool, syn_images])
        pool_labels = np.concatenate([pool_labels, syn_labels])
        synthetic_fraction = config['synthetic_fraction']

    batch = config['batch_size']
    # An "epoch" may be set shorter than one pass, for more checkpoints on a slow machine.
    steps_per_epoch = config.get('steps_per_epoch') or max(n_real // batch, 1)
    total_steps = steps_per_epoch * config['epochs']
    warmup = min(int(steps_per_epoch * config['warmup_epochs']), total_steps // 2)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config['learning_rate'], warmup, max(total_steps, warmup + 1), config['learning_rate'] * 0.01
    )
    model = build_model(config['model'], num_classes, config['seed'])
    parent = pretrained = None
    if config.get('backbone_weights'):  # fine-tune from ImageNet
        pretrained = finetune.initialise(model, config, train.images, train.label, weights)
    if config.get('init_from'):  # continue from a checkpoint (e.g. finish a cut schedule)
        start, start_meta = checkpoint.load(config['init_from'])
        nnx.update(model, nnx.state(start, checkpoint.SAVED))
        parent = parent_record(start_meta)
    optimizer = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=config['weight_decay']), wrt=nnx.Param)

    rng = np.random.default_rng(config['seed'])
    key = jax.random.key(config['seed'])
    pool_d, labels_d = jnp.asarray(pool), jnp.asarray(pool_labels)
    weights_d = jnp.asarray(weights)
    aug_cfg = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config['augment'].items()))
    n_syn = round(batch * synthetic_fraction)
    step = make_step(config, size, aug_cfg)
    # Polyak averaging: the average of recent weights often generalises better than the last
    # ones; it is evaluated beside them every epoch and competes for the checkpoint.
    ema_decay = config.get('ema_decay')
    ema = checkpoint.saved_weights(model) if ema_decay else None

    best = {'score': -np.inf, 'epoch': -1, 'state': None}
    history = []
    log_path = workdir / 'train_log.jsonl'
    log_path.write_text('')
    if pretrained:  # the starting point (the linear probe) is a candidate like any epoch
        probe = val_aucs(model, val, config, weights)
        score = selection_score(probe, config['selection_weights'])
        pretrained['val_auc'] = probe
        log_path.write_text(json.dumps({'epoch': 0, 'val_auc': probe, 'selection': score}) + '\n')
        best = {
            'score': score,
            'epoch': 0,
            'weights': 'linear_probe',
            'state': jax.device_get(checkpoint.saved_weights(model)),
        }
    bar = tqdm(range(config['epochs']), desc='epochs', disable=not progress)
    for epoch in bar:
        t0 = time.time()
        losses = []
        for _ in range(steps_per_epoch):
            idx = rng.choice(n_real, batch - n_syn, p=probs)
            if n_syn:
                idx = np.concatenate([idx, rng.integers(n_real, len(pool), n_syn)])
            key, sub = jax.random.split(key)
            losses.append(step(model, optimizer, pool_d, labels_d, jnp.asarray(idx), sub, weights_d))
            if ema is not None:
                ema = ema_update(ema, checkpoint.saved_weights(model), ema_decay)
        loss = float(np.mean(jax.device_get(losses)))
        train_seconds = time.time() - t0
        aucs = val_aucs(model, val, config, weights)
        score = selection_score(aucs, config['selection_weights'])
        row = {
            'epoch': epoch + 1,
            'loss': loss,
            'val_auc': aucs,
            'selection': score,
            'train_seconds': round(train_seconds, 2),
            'images_per_second': round(steps_per_epoch * batch / train_seconds, 1),
        }
        trained = checkpoint.saved_weights(model)
        candidates = [(score, trained, 'trained')]
        if ema is not None:
            checkpoint.load_weights(model, ema)
            row['ema_val_auc'] = val_aucs(model, val, config, weights)
            row['ema_selection'] = selection_score(row['ema_val_auc'], config['selection_weights'])
            candidates.append((row['ema_selection'], ema, 'ema'))
            checkpoint.load_weights(model, trained)
        score, chosen, kind = max(candidates, key=lambda c: c[0])
        history.append(row)
        with open(log_path, 'a') as f:
            f.write(json.dumps(row) + '\n')
        bar.set_postfix(loss=f'{loss:.3f}', **{f'auc_{s[:4]}': f'{a:.3f}' for s, a in aucs.items()})
        if score > best['score']:
            best = {'score': score, 'epoch': epoch + 1, 'weights': kind, 'state': jax.device_get(chosen)}
            if config.get('save_best_each_epoch'):
                save_provisional(workdir / 'best_so_far', model, best, config, weights, history)
        if config.get('save_best_each_epoch'):  # the last weights too: selection may pass them over
            last = {'epoch': epoch + 1, 'weights': 'trained', 'state': trained}
            save_provisional(workdir / 'last_epoch', model, last, config, weights, history)
        if epoch + 1 - best['epoch'] >= config['early_stopping_patience']:
            break
        if config.get('max_seconds') and time.time() - started > config['max_seconds']:
            break  # a wall-clock guard for lent machines; recorded in epochs_run

    checkpoint.load_weights(model, best['state'])
    model.eval()
    logits = {}
    for split in ('val', 'test'):
        for s in sorted(set(records.source)):
            part = records.subset(source=s, split=split)
            if len(part):
                logits[(s, split)] = (part, predict_logits(model, part.images, size, config['eval_batch_size']))
    model.eval()
    calibration = evaluation.calibrate(logits, weights, classes, config)
    training = {
        'best_epoch': best['epoch'],
        'best_weights': best['weights'],
        'epochs_run': len(history),
        'seconds': round(time.time() - started, 1),
        'history': history,
        'initialised_from': parent,
        'pretrained': pretrained,
    }
    metadata = checkpoint_metadata(config, weights, calibration, training, sorted(set(records.source)))
    return checkpoint.save(workdir, model, metadata)


def checkpoint_metadata(config: dict, weights: np.ndarray, calibration: dict, training: dict, sources) -> dict:
    """Everything a checkpoint carries besides its weights."""
    return {
        'name': 'skindoc-lesion-classifier',
        'image_size': config['image_size'],
        'class_names': list(config['class_names']),
        'malignant_classes': list(config['malignant']),
        'logit_bias': (-np.log(weights)).tolist(),
        'temperature': calibration['temperature'],
        'thresholds': calibration['thresholds'],
        'model': config['model'],
        'preprocessing': 'jax_models.preprocess.preprocess: EXIF orientation, RGB, '
        'whole-image squash to a square, shades-of-grey (p=6) colour '
        'constancy, scaled to [-1, 1]',
        **({'weights_dtype': config['weights_dtype']} if config.get('weights_dtype') else {}),
        'training': {
            'config': {k: v for k, v in config.items() if k != 'data'},
            'platform': jax.devices()[0].platform,
            'device': jax.devices()[0].device_kind,
            **training,
        },
        'data': provenance.data_note(
            sources if provenance.from_imagenet(config) else ('ham10000', 'isic2017'),
            pretrained=provenance.from_imagenet(config),
        ),
        'metrics_canvas_path': calibration['metrics'],
    }


def save_provisional(directory: Path, model, best: dict, config: dict, weights: np.ndarray, history: list) -> None:
    """The best weights so far, so a long run can be stopped at any epoch. Its temperature (1)
    and thresholds are placeholders: `evaluate --calibrate` on val fits the real ones."""
    current = checkpoint.saved_weights(model)
    checkpoint.load_weights(model, best['state'])
    calibration = {'temperature': 1.0, 'thresholds': {'urgent': 0.5, 'soon': 0.5}, 'metrics': {}}
    training = {
        'best_epoch': best['epoch'],
        'best_weights': best['weights'],
        'epochs_run': len(history),
        'history': history,
        'provisional': True,
    }
    checkpoint.save(
        directory,
        model,
        checkpoint_metadata(config, weights, calibration, training, sorted(config['selection_weights'])),
    )
    checkpoint.load_weights(model, current)
