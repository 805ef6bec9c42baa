"""Differences between two dates that are *not* change, for invariance training.

:func:`nuisance` gives one date of a scene what another acquisition of the same, unchanged
ground would look like: a seasonal colour shift, brightness, contrast and gamma, haze, a
smooth illumination field (cloud shadow, vignetting), blur, sensor noise, JPEG artefacts, and a
misregistration of up to :data:`MAX_SHIFT_PIXELS` pixels with slight rotation and scale. Each is
drawn with its own probability and strength. Training pairs keep their labels: a pixel changed
or unchanged stays so (issue 17, item 2). Values are the network's input units before
normalisation (8-bit display radiometry, 0-255).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

MAX_SHIFT_PIXELS = 2.0
"""Largest misregistration (pixels, per axis)."""
MAX_ROTATION_DEGREES = 1.5
MAX_SCALE_CHANGE = 0.02
"""Largest relative scale difference between the dates."""
PROBABILITIES = {"colour": 0.8, "gamma": 0.3, "haze": 0.25, "illumination": 0.25, "blur": 0.2, "noise": 0.3,
                 "geometry": 0.5, "jpeg": 0.25}
"""How often each nuisance is applied to a date (independently)."""


def nuisance(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` (``[C, H, W]`` float32, 0-255) as another acquisition of the same ground (see the module doc)."""
    out = image.astype(np.float32)
    drawn = {name: rng.random() < p for name, p in PROBABILITIES.items()}
    if drawn["geometry"]:
        out = _misregister(out, rng)
    if drawn["colour"]:
        out = _colour(out, rng)
    if drawn["gamma"]:
        out = 255 * (np.clip(out, 0, 255) / 255) ** rng.uniform(0.75, 1.35)
    if drawn["haze"]:
        depth = rng.uniform(0.05, 0.35) * (0.5 + 0.5 * _smooth_field(out.shape[1:], rng))
        airlight = rng.uniform(170, 230) + rng.uniform(-10, 10, (out.shape[0], 1, 1))
        out = out * (1 - depth) + airlight * depth
    if drawn["illumination"]:
        out = out * (1 - rng.uniform(0.1, 0.4) * _smooth_field(out.shape[1:], rng))
    if drawn["blur"]:
        out = ndimage.gaussian_filter(out, (0, *(2 * [rng.uniform(0.3, 1.0)])))
    if drawn["noise"]:
        out = out + rng.normal(0, rng.uniform(1, 4), out.shape)
    out = np.clip(out, 0, 255)
    if drawn["jpeg"] and out.shape[0] == 3:
        out = _jpeg(out, int(rng.integers(25, 76)))
    return out.astype(np.float32)


def with_nuisance(sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A change sample with one date (drawn by ``rng``) passed through :func:`nuisance`; labels kept."""
    key = ("image_before", "image_after")[int(rng.integers(2))]
    return {**sample, key: torch.from_numpy(nuisance(sample[key].numpy(), rng))}


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Season and sensor: mixed bands, gain and offset per band, contrast about the mean."""
    bands = image.shape[0]
    mixing = np.eye(bands) + rng.uniform(-0.06, 0.06, (bands, bands)) * (1 - np.eye(bands))
    mixed = np.tensordot(mixing / mixing.sum(1, keepdims=True), image, axes=1)
    gain = rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, (bands, 1, 1))
    shifted = mixed * gain + rng.uniform(-12, 12, (bands, 1, 1))
    mean = shifted.mean((1, 2), keepdims=True)
    return mean + (shifted - mean) * rng.uniform(0.8, 1.25)


def _smooth_field(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A field in [0, 1] varying over about a quarter of the tile."""
    coarse = rng.random((5, 5))
    field = ndimage.zoom(coarse, (shape[0] / 5, shape[1] / 5), order=3)[: shape[0], : shape[1]]
    field = np.pad(field, ((0, shape[0] - field.shape[0]), (0, shape[1] - field.shape[1])), mode="edge")
    low, high = field.min(), field.max()
    return ((field - low) / max(high - low, 1e-6)).astype(np.float32)


def _misregister(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift, rotate and scale about the centre (bilinear, edges reflected)."""
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
    scale = 1 + rng.uniform(-MAX_SCALE_CHANGE, MAX_SCALE_CHANGE)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
    centre = (np.array(image.shape[1:]) - 1) / 2
    offset = centre - matrix @ centre + rng.uniform(-MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS, 2)
    return np.stack([ndimage.affine_transform(band, matrix, offset, order=1, mode="reflect") for band in image])


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (3 bands) through JPEG at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(image).astype(np.uint8).transpose(1, 2, 0)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer), np.float32).transpose(2, 0, 1)
