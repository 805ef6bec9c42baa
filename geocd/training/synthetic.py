"""Synthetic semantic change pairs from single-date land-cover tiles, with exact from/to labels.

Three kinds of pair (:data:`PAIR_KINDS`), drawn by the training sampler:

* ``edit``: one object-level edit of the target tile, as in Self-Pair (Seo et al., WACV 2023) and
  Changen (Zheng et al.) (:data:`EDITS`):

  - *paste*: connected objects of one class (water, tree or building) of a second tile are pasted
    at their place into the target's 'after' date, colour matched (per band, the objects'
    surroundings in the source take the mean and std of the same surroundings in the target);
  - *removal*: an object (water, tree or building) of the target is filled with the texture of
    another class (ground or low vegetation) copied from shifted places of the same tile;
  - *destruction*: buildings or trees of the target become debris: bare-ground texture of the
    second tile (colour matched to the target's ground), mottled, with fragments of the object
    left in place; labelled to ground;

  the edit is blended with a feathered edge (a truncated Gaussian blur of its mask, the alpha).
  Labels: where alpha >= 0.5 the pixel changed from the target's class (ignore where the target
  holds a class set or ignore) to the edit's class; a target pixel that already allows the edit's
  class, or is ignore, has change ignore. Where 0 < alpha < 0.5 (the feathered rim) all is
  ignore. Elsewhere (alpha = 0) both dates are the target image, unchanged, with the target's labels;
* ``unpaired``: the target as 'before' and the second tile as 'after', as in STAR (ChangeStar,
  Zheng et al., ICCV 2021): changed where their classes differ, unchanged where they are the same
  class, ignore where either is ignore or their class sets overlap;
* ``unchanged``: the target as both dates, the 'after' one another acquisition of the same ground
  (:func:`geocd.training.invariance.nuisance`): labelled unchanged everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from geocd.data.labels import IGNORE, class_bits
from geocd.schema import SECOND, LandCover
from geocd.training.invariance import nuisance
from geocd.training.losses import allowed_classes

PASTE_CLASSES = (LandCover.WATER, LandCover.TREE, LandCover.BUILDING)
"""Classes whose objects are pasted or removed: water, tree, building."""
FILL_CLASSES = (LandCover.GROUND, LandCover.LOW_VEGETATION)
"""Classes whose texture fills a removed object: ground, low vegetation."""
MIN_OBJECT_PIXELS = 16
"""Smaller connected objects are not edited."""
FEATHER_SIGMA = 1.5
"""Std (pixels) of the Gaussian that feathers an edit's edge; the blur is cut at 2 std."""
RING_PIXELS = 8
"""Width (pixels) of the surroundings whose colour statistics match a pasted object to the target."""
FILL_TRIES = 16
"""Shifted copies of the tile tried to fill a removed object with texture."""
GROUND = LandCover.GROUND
"""What a destroyed object becomes."""
DESTROYED_CLASSES = (LandCover.TREE, LandCover.BUILDING)
"""Classes whose objects are destroyed: tree, building."""
DEBRIS_FRAGMENTS = 0.2
"""Share of a destroyed object left in place as fragments."""
EDITS = ("paste", "removal", "destruction")
PAIR_KINDS = ("edit", "unpaired", "unchanged")


@dataclass(frozen=True)
class SyntheticPair:
    """Two dates (``[C, H, W]`` float32, pixel units) and labels (``[H, W]`` int64: classes, sets, 255 ignore;
    change 0, 1 or 255)."""

    before: np.ndarray
    after: np.ndarray
    label_before: np.ndarray
    label_after: np.ndarray
    change: np.ndarray


@dataclass(frozen=True)
class _Edit:
    content: np.ndarray
    mask: np.ndarray
    to_class: int


def synthetic_pair(
    image: np.ndarray, label: np.ndarray, source_image: np.ndarray, source_label: np.ndarray, rng: np.random.Generator,
    kind: str = "edit", edits: tuple[str, ...] = EDITS,
) -> SyntheticPair:
    """A pair of ``kind`` (one of :data:`PAIR_KINDS`) from a target land-cover tile (``image`` ``[C, H, W]``,
    ``label`` ``[H, W]``) and a source tile of the same shape.

    An ``edit`` tries ``edits`` in an order drawn by ``rng`` and is unchanged when none finds an object
    of at least :data:`MIN_OBJECT_PIXELS` pixels.
    """
    if kind == "unpaired":
        return _unpaired(image, label, source_image, source_label)
    if kind == "unchanged":
        return SyntheticPair(image, nuisance(image, rng), label.copy(), label.copy(), np.zeros_like(label))
    makers = {"paste": lambda: _paste(image, label, source_image, source_label, rng),
              "removal": lambda: _removal(image, label, rng),
              "destruction": lambda: _destruction(image, label, source_image, source_label, rng)}
    for k in rng.permutation(len(edits)):
        edit = makers[edits[k]]()
        if edit is not None:
            return _compose(image, label, edit)
    return SyntheticPair(image, image.copy(), label.copy(), label.copy(), np.zeros_like(label))


def synthetic_sample(target: dict[str, Any], source: dict[str, Any], rng: np.random.Generator,
                     kind: str = "edit") -> dict[str, Any]:
    """A change sample (``single_date`` False) of ``kind`` from two single-date land-cover samples of
    :class:`geocd.data.labelled.LabelledPairDataset`, through :func:`synthetic_pair`."""
    pair = synthetic_pair(target["image_before"].numpy(), target["label_before"].numpy(),
                          source["image_before"].numpy(), source["label_before"].numpy(), rng, kind)
    return {**target, "image_after": torch.from_numpy(pair.after), "label_before": torch.from_numpy(pair.label_before),
            "label_after": torch.from_numpy(pair.label_after), "change": torch.from_numpy(pair.change),
            "single_date": torch.tensor(False)}


def _objects(label: np.ndarray, classes: tuple[int, ...], rng: np.random.Generator) -> tuple[int, np.ndarray] | None:
    """A random class of ``classes`` with objects in ``label``, and a random non-empty subset of its objects."""
    found = []
    for c in classes:
        components, n = ndimage.label(label == c)
        sizes = np.bincount(components.ravel(), minlength=n + 1)[1:]
        kept = np.flatnonzero(sizes >= MIN_OBJECT_PIXELS) + 1
        if kept.size:
            found.append((c, components, kept))
    if not found:
        return None
    c, components, kept = found[rng.integers(len(found))]
    chosen = kept[rng.random(kept.size) < 0.5]
    chosen = chosen if chosen.size else kept[[rng.integers(kept.size)]]
    return c, np.isin(components, chosen)


def _paste(image: np.ndarray, label: np.ndarray, source_image: np.ndarray, source_label: np.ndarray,
           rng: np.random.Generator) -> _Edit | None:
    found = _objects(source_label, PASTE_CLASSES, rng)
    if found is None:
        return None
    to_class, mask = found
    ring = ndimage.binary_dilation(mask, iterations=RING_PIXELS) & ~mask
    ring &= (label != IGNORE) & (source_label != IGNORE)
    ring = ring if ring.any() else np.ones_like(mask)
    content = _colour_matched(source_image, ring, image, ring)
    return _Edit(content.astype(np.float32), mask, to_class)


def _colour_matched(source_image: np.ndarray, source_where: np.ndarray, image: np.ndarray,
                    where: np.ndarray) -> np.ndarray:
    """``source_image`` with, per band, the mean and std of ``image`` over ``where`` where it had its own
    over ``source_where``."""
    (source_mean, source_std), (mean, std) = _statistics(source_image, source_where), _statistics(image, where)
    return (source_image - source_mean) / source_std * std + mean


def _statistics(image: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std (at least 1e-3) of ``image`` over ``where``, shaped ``[C, 1, 1]``."""
    pixels = image[:, where]
    return pixels.mean(1)[:, None, None], np.maximum(pixels.std(1), 1e-3)[:, None, None]


def _removal(image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> _Edit | None:
    fills = [c for c in FILL_CLASSES if np.count_nonzero(label == c) >= MIN_OBJECT_PIXELS]
    found = _objects(label, PASTE_CLASSES, rng) if fills else None
    if found is None:
        return None
    fill_class = fills[rng.integers(len(fills))]
    content, filled = _texture_fill(found[1], image, label, image, fill_class, rng)
    return _Edit(content, filled, fill_class) if filled.any() else None


def _destruction(image: np.ndarray, label: np.ndarray, source_image: np.ndarray, source_label: np.ndarray,
                 rng: np.random.Generator) -> _Edit | None:
    found = _objects(label, DESTROYED_CLASSES, rng)
    source_ground = source_label == GROUND
    if found is None or np.count_nonzero(source_ground) < MIN_OBJECT_PIXELS:
        return None
    texture = source_image
    target_ground = label == GROUND
    if np.count_nonzero(target_ground) >= MIN_OBJECT_PIXELS:
        texture = _colour_matched(source_image, source_ground, image, target_ground)
    content, filled = _texture_fill(found[1], image, source_label, texture, GROUND, rng)
    mottle = ndimage.gaussian_filter(rng.normal(0, 1, label.shape), 1.5)
    content = content * np.exp(0.25 * mottle / max(mottle.std(), 1e-6))
    pieces = ndimage.gaussian_filter(rng.random(label.shape), 2.0)
    fragments = filled & (pieces > np.quantile(pieces, 1 - DEBRIS_FRAGMENTS))
    content[:, fragments] = image[:, fragments] * rng.uniform(0.6, 0.9)
    return _Edit(content.astype(np.float32), filled, GROUND) if filled.any() else None


def _texture_fill(mask: np.ndarray, image: np.ndarray, texture_label: np.ndarray, texture: np.ndarray,
                  fill_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with ``mask`` filled from :data:`FILL_TRIES` shifted copies of ``texture`` where ``texture_label``
    is ``fill_class``; and the part of ``mask`` that was filled."""
    content = image.copy()
    remaining = mask
    height, width = mask.shape
    for _ in range(FILL_TRIES):
        dy, dx = int(rng.integers(-height + 1, height)), int(rng.integers(-width + 1, width))
        take = remaining & (_shifted(texture_label, dy, dx, IGNORE) == fill_class)
        content[:, take] = _shifted(texture, dy, dx, 0)[:, take]
        remaining = remaining & ~take
    return content, mask & ~remaining


def _unpaired(image: np.ndarray, label: np.ndarray, source_image: np.ndarray, source_label: np.ndarray) -> SyntheticPair:
    labels = unpaired_labels(*(torch.from_numpy(np.asarray(x, np.int64)) for x in (label, source_label))).numpy()
    return SyntheticPair(image, source_image.astype(np.float32), labels[0], labels[1], labels[2])


def unpaired_labels(label_before: torch.Tensor, label_after: torch.Tensor) -> torch.Tensor:
    """``[3, H, W]`` labels (before, after, change) of two unrelated land-cover crops ``[H, W]`` as dates:
    changed where their classes differ, unchanged where both hold the same single class, ignore
    where either is ignore or their class sets overlap otherwise."""
    before, after = (allowed_classes(label[None].long(), SECOND.num_landcover)[0] for label in (label_before, label_after))
    known = before.any(0) & after.any(0)
    single = (before.sum(0) == 1) & (after.sum(0) == 1)
    change = torch.where(known & ~(before & after).any(0), 1, torch.where(known & single, 0, IGNORE))
    ignored = change == IGNORE
    return torch.stack([label_before.masked_fill(ignored, IGNORE), label_after.masked_fill(ignored, IGNORE),
                        change.to(label_before.dtype)])


def _shifted(array: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """``array`` moved by ``dy`` rows and ``dx`` columns over its last two axes, ``fill`` where nothing moved in."""
    out = np.full_like(array, fill)
    h, w = array.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = array[..., max(-dy, 0):h - max(dy, 0),
                                                                          max(-dx, 0):w - max(dx, 0)]
    return out


def _compose(image: np.ndarray, label: np.ndarray, edit: _Edit) -> SyntheticPair:
    alpha = ndimage.gaussian_filter(edit.mask.astype(np.float32), FEATHER_SIGMA, truncate=2.0)
    after = (image * (1 - alpha) + edit.content * alpha).astype(np.float32)
    edited = alpha >= 0.5
    bits = class_bits(label)
    single = (bits & (bits - 1)) == 0
    known = edited & (bits != 0) & (bits & (1 << (edit.to_class - 1)) == 0)
    change = np.where(alpha == 0, 0, np.where(known, 1, IGNORE))
    label_before = np.where(alpha == 0, label, np.where(known & single, label, IGNORE))
    label_after = np.where(alpha == 0, label, np.where(known, edit.to_class, IGNORE))
    return SyntheticPair(image, after, label_before.astype(np.int64), label_after.astype(np.int64), change.astype(np.int64))
