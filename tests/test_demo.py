"""The demo scene: deterministic for a seed, and away from the planted changes the dates differ only by light and noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from scipy import ndimage

from geocd.demo import write_demo_pair


def _read(pair) -> list[np.ndarray]:  # noqa: ANN001 - a DemoPair
    arrays = []
    for path in (pair.before, pair.after, pair.truth):
        with rasterio.open(path) as src:
            arrays.append(src.read())
    return arrays


def test_the_same_seed_writes_the_same_scene_and_another_seed_another(tmp_path: Path) -> None:
    first = _read(write_demo_pair(tmp_path / "a", size=128, seed=7))
    again = _read(write_demo_pair(tmp_path / "b", size=128, seed=7))
    other = _read(write_demo_pair(tmp_path / "c", size=128, seed=8))
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_away_from_planted_changes_the_dates_differ_by_global_light_and_sensor_noise(tmp_path: Path) -> None:
    before, after, truth = (a.astype(np.float64) for a in _read(write_demo_pair(tmp_path, size=256, seed=1)))
    far = ndimage.distance_transform_edt(truth[0] == 0) > 30  # beyond the longest cast shadow (about 25 px)
    assert far.mean() > 0.3
    for band in range(3):
        gain, offset = np.polyfit(before[band][far], after[band][far], 1)
        residual = after[band][far] - (gain * before[band][far] + offset)
        assert residual.std() < 4  # the same texture, crowns, roofs and shadows: what is left is sensor noise
    assert (after[0][far] - before[0][far]).mean() > 5  # the after date has a warmer, brighter light
