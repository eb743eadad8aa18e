"""Training augmentation that makes dermoscopy look like other devices and phone photos.

Each step is random per image and jittable; the `augment` config turns them on
with `camera: True` and sets their strength:
- optics: defocus (Gaussian blur of random width), motion blur (a short line
  in a random direction), lost resolution (down-scaled and back up);
- lighting: colour temperature (warm / cool light), a linear brightness
  gradient across the frame (a flash or a window to one side);
- JPEG: 8x8 block DCT quantised with the standard tables at a random quality,
  chroma at half resolution, as a phone or a messaging app would store it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import ndimage

# The JPEG standard's (Annex K) quantisation tables for quality 50.
_LUMA_Q = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    np.float32,
).reshape(8, 8)
_CHROMA_Q = np.full((8, 8), 99, np.float32)
_CHROMA_Q[:4, :4] = np.array([17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 99, 47, 66, 99, 99], np.float32).reshape(4, 4)


def _dct_matrix(n: int = 8) -> np.ndarray:
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


_DCT = _dct_matrix()


def _uniform(key, lo_hi):
    return jax.random.uniform(key, (), minval=lo_hi[0], maxval=lo_hi[1])


def gaussian_blur(x, sigma, radius: int = 4):
    """Separable Gaussian blur of H x W x C with a traced sigma (fixed radius)."""
    taps = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    k = jnp.exp(-0.5 * (taps / jnp.maximum(sigma, 1e-3)) ** 2)
    k = k / k.sum()
    h, w = x.shape[:2]
    pad = jnp.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode='reflect')
    rows = sum(k[i] * pad[i : i + h] for i in range(2 * radius + 1))
    return sum(k[i] * rows[:, i : i + w] for i in range(2 * radius + 1))


def motion_blur(x, length, angle, taps: int = 7):
    """Mean of `taps` copies shifted along a line of `length` pixels at `angle`."""
    h, w = x.shape[:2]
    rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing='ij')
    out = jnp.zeros_like(x)
    for t in np.linspace(-0.5, 0.5, taps):
        coords = [rows + t * length * jnp.sin(angle), cols + t * length * jnp.cos(angle)]
        shifted = jax.vmap(
            lambda c, coords=coords: ndimage.map_coordinates(c, coords, order=1, mode='reflect'), in_axes=2, out_axes=2
        )(x)
        out = out + shifted / taps
    return out


def rescale(x, factor):
    """Down to `factor` of the resolution (antialiased) and back up: detail lost as on a
    low-resolution camera. The shape is static; only the content scale is traced."""
    h, w, c = x.shape
    down = jax.image.scale_and_translate(
        x, (h, w, c), (0, 1), jnp.stack([factor, factor]), jnp.zeros(2), 'linear', antialias=True
    )
    return jax.image.scale_and_translate(
        down, (h, w, c), (0, 1), jnp.stack([1 / factor, 1 / factor]), jnp.zeros(2), 'linear', antialias=True
    )


def optics(key, x, cfg):
    ks = jax.random.split(key, 7)
    blurred = gaussian_blur(x, _uniform(ks[0], cfg['defocus_sigma']))
    x = jnp.where(jax.random.bernoulli(ks[1], cfg['defocus_prob']), blurred, x)
    moved = motion_blur(
        x, jax.random.uniform(ks[2], (), maxval=cfg['motion_length']), jax.random.uniform(ks[3], (), maxval=jnp.pi)
    )
    x = jnp.where(jax.random.bernoulli(ks[4], cfg['motion_prob']), moved, x)
    small = rescale(x, _uniform(ks[5], cfg['downscale']))
    return jnp.where(jax.random.bernoulli(ks[6], cfg['downscale_prob']), small, x)


def lighting(key, x, cfg):
    """x in [0, 1]: colour temperature shift and a brightness gradient."""
    k_temp, k_dir, k_amp = jax.random.split(key, 3)
    t = jax.random.uniform(k_temp, (), minval=-cfg['temperature'], maxval=cfg['temperature'])
    x = x * jnp.stack([1 + t, 1 + 0.2 * t, 1 - t])
    h, w = x.shape[:2]
    angle = jax.random.uniform(k_dir, (), maxval=2 * jnp.pi)
    ys, xs = jnp.meshgrid(jnp.linspace(-1, 1, h), jnp.linspace(-1, 1, w), indexing='ij')
    ramp = ys * jnp.sin(angle) + xs * jnp.cos(angle)
    amp = jax.random.uniform(k_amp, (), maxval=cfg['lighting'])
    return jnp.clip(x * (1 + amp * ramp)[..., None], 0.0, 1.0)


def _quantise_blocks(channel, table):
    """8x8 block DCT of an H x W channel (H, W multiples of 8), quantised, inverted."""
    h, w = channel.shape
    blocks = channel.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    coeffs = _DCT @ blocks @ _DCT.T
    coeffs = jnp.round(coeffs / table) * table
    return (_DCT.T @ coeffs @ _DCT).transpose(0, 2, 1, 3).reshape(h, w)


def jpeg_roundtrip(x, quality):
    """x in [0, 1], H x W x 3 with H, W multiples of 16 -> as decoded after JPEG at `quality`."""
    scale = jnp.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality) / 100.0
    luma_q = jnp.clip(jnp.floor(_LUMA_Q * scale + 0.5), 1, 255)
    chroma_q = jnp.clip(jnp.floor(_CHROMA_Q * scale + 0.5), 1, 255)
    rgb = x * 255.0
    y = rgb @ jnp.array([0.299, 0.587, 0.114])
    cb = rgb @ jnp.array([-0.168736, -0.331264, 0.5])
    cr = rgb @ jnp.array([0.5, -0.418688, -0.081312])
    h, w = y.shape

    def chroma(c):  # 4:2:0: half resolution, quantised, nearest back up
        half = c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        q = _quantise_blocks(half, chroma_q)
        return jnp.repeat(jnp.repeat(q, 2, axis=0), 2, axis=1)

    y = _quantise_blocks(y - 128.0, luma_q) + 128.0
    cb, cr = chroma(cb), chroma(cr)
    out = jnp.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return jnp.clip(out / 255.0, 0.0, 1.0)


def jpeg(key, x, cfg):
    k_apply, k_quality = jax.random.split(key)
    compressed = jpeg_roundtrip(x, _uniform(k_quality, cfg['jpeg_quality']))
    return jnp.where(jax.random.bernoulli(k_apply, cfg['jpeg_prob']), compressed, x)
