"""A class-conditional DCGAN for lesion images: networks, training, sampling, grids.

Used for one experiment: does adding generated images of the rare malignant
classes to the classifier's training pool help? (See docs/model-card.md.)
Images are 64 x 64 in the prepared (colour-normalised) space, in [-1, 1].
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, serialization
from PIL import Image

from jax_models import checkpoint

GAN_SIZE = 64


class Generator(nnx.Module):
    """(noise, class) -> 64 x 64 x 3 image in [-1, 1]; 4x4 seed, four 2x up-convolutions."""

    def __init__(self, num_classes: int, latent: int, width: int, *, rngs: nnx.Rngs):
        self.latent = latent
        self.width = width
        self.embed = nnx.Embed(num_classes, latent, rngs=rngs)
        self.project = nnx.Linear(2 * latent, 4 * 4 * width, rngs=rngs)
        self.bn0 = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
        chans = [width, width // 2, width // 4, width // 8]
        self.ups = nnx.List(
            [
                nnx.ConvTranspose(
                    chans[i], chans[i + 1], (4, 4), strides=(2, 2), padding='SAME', use_bias=False, rngs=rngs
                )
                for i in range(3)
            ]
        )
        self.bns = nnx.List([nnx.BatchNorm(chans[i + 1], momentum=0.9, rngs=rngs) for i in range(3)])
        self.to_rgb = nnx.ConvTranspose(chans[3], 3, (4, 4), strides=(2, 2), padding='SAME', rngs=rngs)

    def __call__(self, z, labels):
        h = self.project(jnp.concatenate([z, self.embed(labels)], axis=1))
        h = jax.nn.relu(self.bn0(h.reshape(-1, 4, 4, self.width)))
        for up, bn in zip(self.ups, self.bns, strict=True):
            h = jax.nn.relu(bn(up(h)))
        return jnp.tanh(self.to_rgb(h))


class Discriminator(nnx.Module):
    """Image -> realism score, with a projection term for the class (Miyato & Koyama 2018)."""

    def __init__(self, num_classes: int, width: int, *, rngs: nnx.Rngs):
        chans = [3, width // 8, width // 4, width // 2, width]
        self.convs = nnx.List(
            [nnx.Conv(chans[i], chans[i + 1], (4, 4), strides=(2, 2), padding='SAME', rngs=rngs) for i in range(4)]
        )
        self.out = nnx.Linear(width, 1, rngs=rngs)
        self.embed = nnx.Embed(num_classes, width, rngs=rngs)

    def __call__(self, x, labels):
        h = x
        for conv in self.convs:
            h = jax.nn.leaky_relu(conv(h), 0.2)
        h = jnp.sum(h, axis=(1, 2))
        return self.out(h)[:, 0] + jnp.sum(self.embed(labels) * h, axis=1)


@nnx.jit
def gan_step(gen, disc, g_opt, d_opt, images, labels, idx, key):
    """One hinge-loss update of the discriminator, then of the generator."""
    k_z, k_flip, k_z2 = jax.random.split(key, 3)
    real = images[idx].astype(jnp.float32) / 127.5 - 1.0
    flip = jax.random.bernoulli(k_flip, 0.5, (real.shape[0], 1, 1, 1))
    real = jnp.where(flip, real[:, :, ::-1], real)
    y = labels[idx]
    z = jax.random.normal(k_z, (real.shape[0], gen.latent))
    fake = gen(z, y)

    def d_loss(disc):
        return jnp.mean(jax.nn.relu(1.0 - disc(real, y))) + jnp.mean(
            jax.nn.relu(1.0 + disc(jax.lax.stop_gradient(fake), y))
        )

    dl, d_grads = nnx.value_and_grad(d_loss)(disc)
    d_opt.update(disc, d_grads)

    z2 = jax.random.normal(k_z2, (real.shape[0], gen.latent))

    def g_loss(gen):
        return -jnp.mean(disc(gen(z2, y), y))

    gl, g_grads = nnx.value_and_grad(g_loss)(gen)
    g_opt.update(gen, g_grads)
    return dl, gl


def resize_to(images_uint8: np.ndarray, size: int) -> np.ndarray:
    out = jax.image.resize(
        jnp.asarray(images_uint8, jnp.float32), (len(images_uint8), size, size, 3), 'linear', antialias=True
    )
    return np.clip(np.asarray(out) + 0.5, 0, 255).astype(np.uint8)


def train_gan(images_uint8: np.ndarray, labels: np.ndarray, config: dict, workdir: str | Path, log=print):
    """Trains on prepared canvases (any size; resized to 64); saves the generator."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    num_classes = len(config['class_names'])
    images = jnp.asarray(resize_to(images_uint8, GAN_SIZE))
    labels_d = jnp.asarray(labels, jnp.int32)
    rngs = nnx.Rngs(config['seed'])
    gen = Generator(num_classes, config['latent'], config['width'], rngs=rngs)
    disc = Discriminator(num_classes, config['width'], rngs=rngs)
    g_opt = nnx.Optimizer(gen, optax.adam(config['g_lr'], b1=0.0, b2=0.99), wrt=nnx.Param)
    d_opt = nnx.Optimizer(disc, optax.adam(config['d_lr'], b1=0.0, b2=0.99), wrt=nnx.Param)
    # Class-balanced sampling so the rare classes get as many updates as nevi.
    counts = np.bincount(labels, minlength=num_classes)
    p = 1.0 / counts[labels]
    p /= p.sum()
    rng = np.random.default_rng(config['seed'])
    key = jax.random.key(config['seed'])
    started = time.time()
    history = []
    for step in range(1, config['steps'] + 1):
        idx = jnp.asarray(rng.choice(len(labels), config['batch_size'], p=p))
        key, sub = jax.random.split(key)
        dl, gl = gan_step(gen, disc, g_opt, d_opt, images, labels_d, idx, sub)
        out_of_time = config.get('max_seconds') and time.time() - started > config['max_seconds']
        if step % max(config['steps'] // 10, 1) == 0 or step == config['steps'] or out_of_time:
            row = {'step': step, 'd_loss': float(dl), 'g_loss': float(gl), 'seconds': round(time.time() - started, 1)}
            history.append(row)
            log(json.dumps(row))
        if out_of_time:
            break  # a wall-clock guard for lent machines; the last logged step says where
    gen.eval()
    save_generator(
        workdir,
        gen,
        {
            'class_names': list(config['class_names']),
            'latent': config['latent'],
            'width': config['width'],
            'steps': step,
            'history': history,
            'seconds': round(time.time() - started, 1),
            'device': jax.devices()[0].device_kind,
        },
    )
    return gen


def save_generator(directory: Path, gen: Generator, metadata: dict):
    state = jax.tree.map(lambda a: np.asarray(a, np.float32), checkpoint.saved_weights(gen))
    (directory / 'generator.msgpack').write_bytes(serialization.msgpack_serialize(state))
    (directory / 'generator.json').write_text(json.dumps(metadata, indent=2) + '\n')


def load_generator(directory: str | Path) -> tuple[Generator, dict]:
    directory = Path(directory)
    meta = json.loads((directory / 'generator.json').read_text())
    gen = Generator(len(meta['class_names']), meta['latent'], meta['width'], rngs=nnx.Rngs(0))
    checkpoint.load_weights(gen, serialization.msgpack_restore((directory / 'generator.msgpack').read_bytes()))
    gen.eval()
    return gen, meta


@partial(nnx.jit, static_argnames=('n',))
def _generate(gen, label, key, n):
    z = jax.random.normal(key, (n, gen.latent))
    return gen(z, jnp.full((n,), label, jnp.int32))


def sample(gen: Generator, label: int, n: int, seed: int = 0) -> np.ndarray:
    """n generated images of class `label`, uint8 64 x 64 x 3."""
    x = _generate(gen, label, jax.random.key(seed), n)
    return np.clip((np.asarray(x) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def synthesize_pool(gen: Generator, class_names, classes, per_class: int, canvas: int, seed: int = 0) -> dict:
    """Generated canvases for `classes`, ready for the classifier's training pool."""
    images, labels = [], []
    for i, c in enumerate(classes):
        label = list(class_names).index(c)
        batch = min(256, per_class)
        imgs = np.concatenate(
            [sample(gen, label, batch, seed * 1000 + i * 100 + j) for j in range(-(-per_class // batch))]
        )[:per_class]
        images.append(resize_to(imgs, canvas))
        labels.append(np.full(per_class, label, np.int32))
    return {'images': np.concatenate(images), 'label': np.concatenate(labels)}


def grid(images: np.ndarray, columns: int = 8, pad: int = 2) -> Image.Image:
    """Tiles uint8 images into one picture."""
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    canvas = Image.new('RGB', (columns * (w + pad) + pad, rows * (h + pad) + pad), (255, 255, 255))
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        canvas.paste(Image.fromarray(im), (pad + c * (w + pad), pad + r * (h + pad)))
    return canvas
