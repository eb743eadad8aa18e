"""On-device training augmentation of prepared uint8 canvases, and the eval resize.

Geometry (random resized crop with aspect jitter, any rotation, flips) is one
affine warp per image; colour jitter, blur and noise follow. Everything is
jittable so the whole training step runs on the accelerator.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy import ndimage

from jax_models import camera


def _warp(image, matrix, offset, size):
    """Samples `image` (H x W x C) at matrix @ (output coords) + offset, bilinear, reflected."""
    h, w = image.shape[:2]
    ys, xs = jnp.meshgrid(jnp.linspace(-1, 1, size), jnp.linspace(-1, 1, size), indexing='ij')
    grid = jnp.stack([ys.ravel(), xs.ravel()])
    src = matrix @ grid + offset[:, None]
    rows = (src[0] + 1) * (h - 1) / 2
    cols = (src[1] + 1) * (w - 1) / 2

    def channel(c):
        return ndimage.map_coordinates(c, [rows, cols], order=1, mode='reflect')

    out = jax.vmap(channel, in_axes=2, out_axes=1)(image)
    return out.reshape(size, size, image.shape[2])


def _geometry(key, image, size, cfg):
    k_scale, k_ratio, k_angle, k_flip, k_dy, k_dx = jax.random.split(key, 6)
    lo, hi = cfg['scale']
    area = jax.random.uniform(k_scale, (), minval=lo, maxval=hi)
    log_ratio = jax.random.uniform(k_ratio, (), minval=jnp.log(cfg['ratio'][0]), maxval=jnp.log(cfg['ratio'][1]))
    ratio = jnp.exp(log_ratio)
    half_h = jnp.minimum(jnp.sqrt(area / ratio), 1.0)
    half_w = jnp.minimum(jnp.sqrt(area * ratio), 1.0)
    angle = jax.random.uniform(k_angle, (), maxval=2 * jnp.pi) if cfg['rotate'] else 0.0
    flip = jnp.where(jax.random.bernoulli(k_flip), -1.0, 1.0)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    rot = jnp.array([[cos, -sin], [sin, cos]])
    matrix = rot @ jnp.diag(jnp.array([half_h, half_w * flip]))
    centre = jnp.array(
        [
            jax.random.uniform(k_dy, (), minval=-1.0, maxval=1.0) * (1 - half_h),
            jax.random.uniform(k_dx, (), minval=-1.0, maxval=1.0) * (1 - half_w),
        ]
    )
    return _warp(image, matrix, centre, size)


def _blur(image):
    k = jnp.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    pad = jnp.pad(image, ((2, 2), (2, 2), (0, 0)), mode='reflect')
    rows = sum(k[i] * pad[i : i + image.shape[0]] for i in range(5))
    return sum(k[i] * rows[:, i : i + image.shape[1]] for i in range(5))


def _colour(key, x, cfg):
    """x: H x W x 3 float in [0, 1]."""
    ks = jax.random.split(key, 7)

    def u(k, a, shape=()):
        return jax.random.uniform(k, shape, minval=-a, maxval=a)

    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * (1 + u(ks[0], cfg['saturation']))
    x = x * (1 + u(ks[1], cfg['channel_gain'], (3,)))
    x = x * (1 + u(ks[2], cfg['brightness']))
    mean = x.mean()
    x = mean + (x - mean) * (1 + u(ks[3], cfg['contrast']))
    x = jnp.clip(x, 0.0, 1.0) ** jnp.exp(u(ks[4], cfg['gamma']))
    blur_amount = jax.random.uniform(ks[5]) * jax.random.bernoulli(ks[6], cfg['blur_prob'])
    x = x + blur_amount * (_blur(x) - x)
    return x


def augment_one(key, image_uint8, size, cfg):
    """One prepared uint8 canvas -> one augmented image, float in [0, 255].

    With the `camera` settings (`jax_models.camera`) the image is also made to look
    as if another device took it: optics and motion, lighting, resolution, JPEG.
    """
    use_camera = bool(cfg.get('camera'))
    # Configs without camera settings draw exactly the keys they always did.
    k_geo, k_col, k_noise, *k_cam = jax.random.split(key, 4 if use_camera else 3)
    x = _geometry(k_geo, image_uint8.astype(jnp.float32) / 255.0, size, cfg)
    if use_camera:
        k_optics, k_light, k_jpeg = jax.random.split(k_cam[0], 3)
        x = camera.optics(k_optics, x, cfg)
    x = _colour(k_col, x, cfg)
    if use_camera:
        x = camera.lighting(k_light, x, cfg)
    sigma = jax.random.uniform(k_noise, (), maxval=cfg['noise'])
    x = jnp.clip(x + sigma * jax.random.normal(k_noise, x.shape), 0.0, 1.0)
    if use_camera:
        x = camera.jpeg(k_jpeg, x, cfg)
    return jnp.clip(x, 0.0, 1.0) * 255.0


def augment_batch(key, images_uint8, size, cfg):
    keys = jax.random.split(key, images_uint8.shape[0])
    return jax.vmap(lambda k, im: augment_one(k, im, size, cfg))(keys, images_uint8)


def resize_batch(images_uint8, size):
    """Eval path for canvases already prepared: antialiased resize to the model size, [0, 255]."""
    n, _, _, c = images_uint8.shape
    return jax.image.resize(images_uint8.astype(jnp.float32), (n, size, size, c), method='linear', antialias=True)
