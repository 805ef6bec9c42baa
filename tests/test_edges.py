"""No change invented along the edge of one date's footprint: warped edges, cropped 'after' images.

The real-data checks run the default model through benchmarks/edges.py's helpers and skip
where /work/shared/data is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from geocd.checkpoint import load_models

DATA = Path("/work/shared/data")
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "edges.py"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} absent")


def benchmark():
    """benchmarks/edges.py as a module."""
    spec = importlib.util.spec_from_file_location("edges_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_data
@pytest.mark.parametrize(("dataset", "name", "resolution"), [("sztaki", "Szada_train_6", 1.5), ("dsifn", "5_3", 2.0)])
def test_cropped_after_flags_no_more_change_along_the_crop_edge(tmp_path: Path, dataset: str, name: str,
                                                                  resolution: float) -> None:
    with_crop, with_full, excess = benchmark().crop_excess(DATA, tmp_path, dataset, name, resolution, load_models([]), False)
    assert excess <= 2.0, f"{with_crop:.1f} % flagged along the crop edge, {with_full:.1f} % with the full pair"


@needs_data
def test_landsat_warped_to_wgs84_and_back_flags_no_band_along_its_edge(tmp_path: Path) -> None:
    band_km2, total_km2 = benchmark().landsat_round_trip(DATA, tmp_path, load_models([]), False)
    assert band_km2 == 0.0 and total_km2 < 0.05
