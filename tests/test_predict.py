"""Tiled, streamed prediction on GeoTIFF pairs: grids, co-registration, stitching."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window

from conftest import ORIGIN, intensity_model, planted_pair, smooth_scene, write_raster
from geocd.changemap import NODATA, ChangeMapInfo, decode_probability
from geocd.changemap import raster_sink
from geocd.data.pair import PairDataset
from geocd.inference.predict import PredictOptions, PredictOutputs, predict_change_raster
from geocd.inference.stitch import blend_window
from geocd.schema import LandCover


def run(before: Path, after: Path, out: Path, **options) -> np.ndarray:
    model = options.pop("model", None) or intensity_model()
    predict_change_raster(before, after, [model], [raster_sink(out)], PredictOptions(**options))
    with rasterio.open(out) as src:
        return src.read()


def test_output_is_on_exactly_the_before_grid(tmp_path: Path) -> None:
    before, after, _ = planted_pair(tmp_path, 70, 90)
    run(before, after, tmp_path / "change.tif", tile_size=32)
    with rasterio.open(before) as b, rasterio.open(tmp_path / "change.tif") as c:
        assert c.crs == b.crs and c.transform == b.transform and (c.width, c.height) == (b.width, b.height)
        assert c.count == 3 and c.dtypes == ("uint8",) * 3 and c.nodata == NODATA
        assert c.descriptions == ("change_probability", "from_class", "to_class")
        assert c.scales[0] == pytest.approx(1 / 254)
        info = ChangeMapInfo.from_tags(c.tags())
        assert info.threshold == 0.5 and info.trained_classes == (LandCover.LOW_VEGETATION, LandCover.BUILDING)
        assert c.profile["tiled"] and c.profile["compress"] == "deflate"


def test_planted_change_is_found_with_from_and_to_classes(tmp_path: Path) -> None:
    before, after, changed = planted_pair(tmp_path)
    out = run(before, after, tmp_path / "change.tif", tile_size=48)
    found = decode_probability(out[0]) >= 0.5
    assert (found == changed).mean() > 0.995
    assert set(np.unique(out[1][changed])) == {3} and set(np.unique(out[2][changed])) == {5}
    assert (out[1][~changed] == 0).all() and (out[2][~changed] == 0).all()


def test_untrained_land_cover_gives_zero_classes(tmp_path: Path) -> None:
    before, after, changed = planted_pair(tmp_path)
    out = run(before, after, tmp_path / "change.tif", model=intensity_model(trained=()))
    assert (decode_probability(out[0][changed]) > 0.9).all()
    assert (out[1] == 0).all() and (out[2] == 0).all()


def test_argmax_never_returns_an_untrained_class(tmp_path: Path) -> None:
    before, after, changed = planted_pair(tmp_path)
    out = run(before, after, tmp_path / "change.tif", model=intensity_model(trained=(1, 3)))
    assert set(np.unique(out[1][changed])) | set(np.unique(out[2][changed])) <= {1, 3}


@pytest.mark.parametrize(("tile", "overlap"), [(32, 8), (48, 12), (64, 16), (160, 0)])
def test_result_does_not_depend_on_tiling(tmp_path: Path, tile: int, overlap: int) -> None:
    """A model with a receptive field, blended over overlaps, shows no seams at tile borders.

    The 1-pixel frame at the scene edge is left out: there the model sees padding, which
    differs by where the scene edge falls in a tile.
    """
    before, after, _ = planted_pair(tmp_path, 100, 140)
    model = intensity_model(smoothing=True)
    whole = run(before, after, tmp_path / "whole.tif", model=model, tile_size=160, overlap=0)
    tiled = run(before, after, tmp_path / "tiled.tif", model=model, tile_size=tile, overlap=overlap)
    inner = (slice(None), slice(1, -1), slice(1, -1))
    whole, tiled = whole[inner].astype(int), tiled[inner].astype(int)
    assert np.abs(whole[0] - tiled[0]).max() <= 1
    assert (whole[1:] == tiled[1:]).mean() > 0.999


def test_after_in_another_crs_and_resolution_matches_co_registered(tmp_path: Path) -> None:
    before_path, after_path, changed = planted_pair(tmp_path, 96, 128)
    with rasterio.open(after_path) as src:
        data = src.read()
        dst_crs = "EPSG:4326"
        transform, width, height = calculate_default_transform(
            src.crs, dst_crs, src.width, src.height, *src.bounds, resolution=(1.5e-5, 1.5e-5)
        )
        warped = np.zeros((3, height, width), np.uint8)
        reproject(data, warped, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs=dst_crs, resampling=Resampling.bilinear, dst_nodata=0)
    other = write_raster(tmp_path / "after_4326.tif", warped, crs=dst_crs, transform=transform, nodata=0)
    same = run(before_path, after_path, tmp_path / "same.tif")
    moved = run(before_path, other, tmp_path / "moved.tif")
    both = (same[0] != NODATA) & (moved[0] != NODATA)
    assert both.mean() > 0.9
    agree = ((same[0] >= 127) == (moved[0] >= 127))[both]
    assert agree.mean() > 0.97
    with rasterio.open(tmp_path / "moved.tif") as c, rasterio.open(before_path) as b:
        assert c.transform == b.transform and c.crs == b.crs


def test_only_the_overlap_is_valid(tmp_path: Path) -> None:
    scene = smooth_scene(64, 64).astype(np.uint8)
    before = write_raster(tmp_path / "before.tif", scene)
    shifted = from_origin(ORIGIN[0] + 20, ORIGIN[1] - 10, 1.0, 1.0)
    after = write_raster(tmp_path / "after.tif", scene, transform=shifted)
    out = run(before, after, tmp_path / "change.tif", tile_size=32)
    expected = np.zeros((64, 64), bool)
    expected[10:, 20:] = True
    assert ((out[0] != NODATA) == expected).all()


def test_nodata_in_either_date_is_nodata_in_the_output(tmp_path: Path) -> None:
    before_data = smooth_scene(64, 64).astype(np.uint8)
    after_data = before_data.copy()
    before_data[:, :, :10] = 0
    after_data[:, :, 50:] = 0
    before = write_raster(tmp_path / "before.tif", before_data, nodata=0)
    after = write_raster(tmp_path / "after.tif", after_data, nodata=0)
    out = run(before, after, tmp_path / "change.tif", tile_size=32)
    assert (out[:, :, :10] == NODATA).all() and (out[:, :, 50:] == NODATA).all()
    assert (out[0, :, 10:50] != NODATA).all()


def test_scene_smaller_than_a_tile_is_padded_then_cropped(tmp_path: Path) -> None:
    before, after, changed = planted_pair(tmp_path, 70, 120)
    out = run(before, after, tmp_path / "change.tif", tile_size=256)
    assert out.shape == (3, 70, 120)
    assert ((decode_probability(out[0]) >= 0.5) == changed).mean() > 0.995


def test_blend_window_ramps_only_over_the_overlap() -> None:
    w = blend_window(16, 4)
    assert (w[4:12] == 1).all() and (w > 0).all()
    assert np.all(np.diff(w[:4]) > 0) and np.allclose(w[:4], w[::-1][:4])
    assert (blend_window(8, 0) == 1).all()


def test_memory_buffer_spans_about_one_tile_row(tmp_path: Path) -> None:
    from geocd.inference.stitch import RowStreamStitcher

    rows_seen: list[int] = []
    peak = 0
    windows = [Window(c, r, 32, 32) for r in range(224, -1, -28) for c in range(0, 100, 28)]
    stitcher = RowStreamStitcher(windows, Window(0, 0, 100, 256), 1, 4, lambda rows: rows_seen.extend(
        range(rows.row_off, rows.row_off + rows.valid.shape[0])))
    for w in windows:
        stitcher.add(w, np.ones((1, 32, 32), np.float32), np.ones((32, 32), bool))
        peak = max(peak, stitcher.held, stitcher.weight_sums.shape[0], stitcher.sums.shape[1])
    assert sorted(rows_seen) == list(range(256)) and len(rows_seen) == 256
    assert peak <= 32 + 4
    assert stitcher.complete


def test_land_cover_maps_of_both_dates(tmp_path: Path) -> None:
    from geocd.inference.predict import predict

    before, after, changed = planted_pair(tmp_path)
    predict(before, after, models=[intensity_model()], outputs=PredictOutputs(landcover=tmp_path / "lc.tif"), options=PredictOptions(tile_size=48))
    with rasterio.open(tmp_path / "lc.tif") as src, rasterio.open(before) as b:
        assert src.count == 2 and src.transform == b.transform and src.nodata == NODATA
        assert src.descriptions == ("landcover_before", "landcover_after")
        cover = src.read()
    assert (cover[0] == LandCover.LOW_VEGETATION).all()  # the smooth scene is not bright
    assert (cover[1][changed] == LandCover.BUILDING).all() and (cover[1][~changed] == LandCover.LOW_VEGETATION).all()


def test_land_cover_map_needs_trained_heads(tmp_path: Path) -> None:
    from geocd.errors import InputError
    from geocd.inference.predict import predict

    before, after, _ = planted_pair(tmp_path)
    with pytest.raises(InputError, match="untrained land-cover heads"):
        predict(before, after, models=[intensity_model(trained=())], outputs=PredictOutputs(landcover=tmp_path / "lc.tif"))
    assert not (tmp_path / "lc.tif").exists()


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5, float("nan")])
def test_threshold_outside_0_1_is_refused_before_writing(tmp_path: Path, threshold: float) -> None:
    from geocd.errors import InputError

    before, after, _ = planted_pair(tmp_path)
    with pytest.raises(InputError, match=r"^threshold .* must be in \(0, 1\]$"):
        run(before, after, tmp_path / "change.tif", threshold=threshold)
    assert not (tmp_path / "change.tif").exists()


def test_labelled_pair_dataset_speaks_torchgeo_through_its_public_api(tmp_path: Path) -> None:
    """``res`` is the grid's; sampler queries and partial slices map to pixel windows of the 'before' grid."""
    from torchgeo.samplers import GridGeoSampler


    from geocd.data.archive import PairRecord
    from geocd.data.labelled import LabelledPairDataset

    before, after, _ = planted_pair(tmp_path)
    dataset = LabelledPairDataset(PairRecord("p", before, after, change=before), 3)
    assert dataset.res == dataset.grid.res == (1.0, 1.0)
    windows = [dataset.window_of(q) for q in GridGeoSampler(dataset, 64, 48)]
    assert {(w.col_off, w.row_off, w.width, w.height) for w in windows} == {(c, r, 64, 64) for c in (0, 48, 96) for r in (-16, 32)}
    left, top = dataset.grid.transform.c, dataset.grid.transform.f
    assert dataset.window_of((slice(left + 10, left + 20), slice(None, top - 5))) == Window(10, 5, 10, 91)


@pytest.mark.parametrize(("height", "width", "shift", "size", "stride"),
                         [(96, 128, 0, 64, 48), (96, 128, 0, 64, 64), (200, 75, 0, 32, 24), (40, 50, 0, 64, 56),
                          (96, 128, 13, 32, 28)])
def test_prediction_tiles_are_the_torchgeo_samplers_tiles(tmp_path: Path, height: int, width: int, shift: int,
                                                          size: int, stride: int) -> None:
    """Prediction tiles the overlap without TorchGeo, on the very grid its ``GridGeoSampler`` draws (a scene
    smaller than a tile, a stride that does not divide it, a partial overlap), north to south, west to east."""
    from torchgeo.samplers import GridGeoSampler

    from geocd.data.archive import PairRecord
    from geocd.data.labelled import LabelledPairDataset
    from geocd.data.rasters import tile_windows

    before, after, _ = planted_pair(tmp_path, height, width)
    if shift:
        with rasterio.open(after) as src:
            moved = write_raster(tmp_path / "moved.tif", src.read(), transform=src.transform * Affine.translation(shift, -shift))
        after = moved
    dataset = LabelledPairDataset(PairRecord("p", before, after, change=before), 3, min_extent=size)
    sampled = [dataset.window_of(q) for q in GridGeoSampler(dataset, size, stride)]
    tiles = tile_windows(dataset.overlap, size, stride)
    assert sorted(w.flatten() for w in tiles) == sorted(w.flatten() for w in sampled) and len(tiles) == len(sampled)
    assert [(w.row_off, w.col_off) for w in tiles] == sorted((w.row_off, w.col_off) for w in tiles)


def test_cpu_default_reads_tiles_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readers = set()
    read = PairDataset.read

    def recorded(self: PairDataset, window: Window) -> dict:
        readers.add(os.getpid())
        return read(self, window)

    monkeypatch.setattr(PairDataset, "read", recorded)
    before, after, _ = planted_pair(tmp_path)
    run(before, after, tmp_path / "change.tif", tile_size=32, device="cpu")
    assert readers == {os.getpid()}


def test_polygons_alone_are_made_from_the_rows_without_a_raster_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``-o`` alone writes no change raster, and its polygons are exactly those of ``vectorize`` on the raster."""
    import pyogrio
    from geopandas.testing import assert_geodataframe_equal

    from geocd import changemap
    from geocd.inference.predict import predict
    from geocd.vector import pipeline, vectorize

    before, after, _ = planted_pair(tmp_path)
    options = PredictOptions(tile_size=32, overlap=8)  # many tiles and rows, so regions cross the sinks' row chunks
    monkeypatch.setattr(pipeline, "STRIP_PIXELS", 128 * 8)  # and the polygons' strips (8 rows or more)
    predict(before, after, models=[intensity_model()], outputs=PredictOutputs(raster=tmp_path / "c.tif"), options=options)
    vectorize(tmp_path / "c.tif", tmp_path / "from_raster.gpkg")
    opened = []
    real = changemap.open_output_raster
    monkeypatch.setattr(changemap, "open_output_raster", lambda path, *args: (opened.append(path), real(path, *args))[1])
    result = predict(before, after, models=[intensity_model()], outputs=PredictOutputs(vectors=tmp_path / "rows.gpkg"),
                     options=options)
    assert opened == [] and result.raster is None and result.polygons > 0
    assert_geodataframe_equal(pyogrio.read_dataframe(tmp_path / "rows.gpkg"),
                              pyogrio.read_dataframe(tmp_path / "from_raster.gpkg"))


def test_the_polygons_strip_is_made_while_the_rows_go_on_and_its_error_ends_the_run(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A strip is polygonized in the sink's own thread: the rows' producer goes on meanwhile (it does not wait
    for the strip), and a strip that fails fails the run, as itself."""
    import threading

    from geocd.changemap import nodata_rows
    from geocd.data.rasters import Grid
    from geocd.errors import OutputError
    from geocd.vector import PolygonSink, pipeline

    monkeypatch.setattr(pipeline, "STRIP_PIXELS", 16 * 8)
    grid = Grid("EPSG:32633", from_origin(500_000, 5_000_000, 1, 1), 16, 32)
    info = ChangeMapInfo(threshold=0.5)
    started, release, added = threading.Event(), threading.Event(), []
    add = pipeline._PolygonBuilder.add

    def slow(self, strip) -> None:  # noqa: ANN001
        started.set()
        release.wait(10)
        added.append(strip.row_offset)
        add(self, strip)

    monkeypatch.setattr(pipeline._PolygonBuilder, "add", slow)
    sink = PolygonSink(min_area_m2=0)
    with sink(grid, info) as rows:
        rows(nodata_rows(Window(0, 0, 16, 8), info))  # a whole strip: handed to the thread
        assert started.wait(10)
        rows(nodata_rows(Window(0, 8, 16, 4), info))  # the producer goes on while the strip is being made
        assert added == []
        release.set()
        rows(nodata_rows(Window(0, 12, 16, 20), info))
    assert added == [0, 8] and len(sink.polygons.frame) == 0

    def failing(self, strip) -> None:  # noqa: ANN001
        raise OutputError(tmp_path, "no space left")

    monkeypatch.setattr(pipeline._PolygonBuilder, "add", failing)
    with pytest.raises(OutputError, match="no space left"), PolygonSink()(grid, info) as rows:
        for row in range(0, 32, 8):
            rows(nodata_rows(Window(0, row, 16, 8), info))


def test_the_polygons_strip_left_after_the_last_rows_is_a_quarter_strip(monkeypatch: pytest.MonkeyPatch) -> None:
    """What is polygonized after the producer's last rows is the run's tail: the strip before it ends a quarter
    of a strip early."""
    from geocd.changemap import nodata_rows
    from geocd.data.rasters import Grid
    from geocd.vector import PolygonSink, pipeline

    monkeypatch.setattr(pipeline, "STRIP_PIXELS", 16 * 8)  # strips of 8 rows
    info, strips = ChangeMapInfo(threshold=0.5), []
    add = pipeline._PolygonBuilder.add
    monkeypatch.setattr(pipeline._PolygonBuilder, "add",
                        lambda self, strip: (strips.append((strip.row_offset, len(strip.probability))), add(self, strip)))
    with PolygonSink(min_area_m2=0)(Grid("EPSG:32633", from_origin(500_000, 5_000_000, 1, 1), 16, 40), info) as rows:
        for row in range(40):
            rows(nodata_rows(Window(0, row, 16, 1), info))
    assert strips == [(0, 8), (8, 8), (16, 8), (24, 8), (32, 6), (38, 2)]


def test_the_next_batch_is_started_before_a_batch_is_collected_and_results_keep_their_order() -> None:
    """With two batches in flight (OpenVINO), batch k + 1 is started before batch k is collected, all from the
    caller's thread; results keep the batches' order, an error batch is raised, and the network's busy time is the
    union of the batches' spans."""
    import threading

    from geocd.errors import InputError
    from geocd.inference.predict import _Network
    from geocd.models.config import ChangeLogits

    events, threads = [], set()

    class Runner:
        def __call__(self, before: np.ndarray, after: np.ndarray) -> ChangeLogits:
            return self.start(before, after)()

        def start(self, before: np.ndarray, after: np.ndarray):  # noqa: ANN202 - the collecting call
            number = int(before[0, 0, 0, 0])
            events.append(f"start {number}")
            threads.add(threading.get_ident())

            def collect() -> ChangeLogits:
                events.append(f"collect {number}")
                threads.add(threading.get_ident())
                return ChangeLogits(before[:, :2], after[:, :2], before[:, :1])

            return collect

    batches = [{"image_before": np.full((1, 3, 4, 4), i, np.float32), "image_after": np.zeros((1, 3, 4, 4), np.float32)}
               for i in range(4)]
    network = _Network([Runner()], PredictOptions(), 2)
    got = [(int(batch["image_before"][0, 0, 0, 0]), pending().change[0, 0, 0, 0]) for batch, pending in network.run(batches)]
    assert events == ["start 0", "start 1", "collect 0", "start 2", "collect 1", "start 3", "collect 2", "collect 3"]
    assert threads == {threading.get_ident()}
    assert [g for g, _ in got] == list(range(4))
    np.testing.assert_allclose([p for _, p in got], 1 / (1 + np.exp(-np.arange(4))), rtol=1e-6)
    with pytest.raises(InputError, match="unreadable"):
        list(_Network([Runner()], PredictOptions(), 2).run([batches[0], InputError(None, "unreadable"), batches[1]]))
    network.spans = [(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.8)]
    assert network.busy_seconds() == 4.0


def test_a_sink_failing_while_the_network_runs_fails_the_prediction(tmp_path: Path) -> None:
    """Sinks run one batch behind the network, in a thread: their error still ends the run, as itself."""
    from contextlib import contextmanager

    from geocd.errors import OutputError

    before, after, _ = planted_pair(tmp_path)
    seen = []

    @contextmanager
    def failing(grid, info):  # noqa: ANN001, ANN202 - a SinkFactory
        def sink(rows) -> None:  # noqa: ANN001
            seen.append(int(rows.window.row_off))
            if len(seen) == 3:
                raise OutputError(tmp_path / "out", "disk full")

        yield sink

    with pytest.raises(OutputError, match="disk full"):
        predict_change_raster(before, after, [intensity_model()], [failing], PredictOptions(tile_size=32, overlap=8))
    assert len(seen) == 3
