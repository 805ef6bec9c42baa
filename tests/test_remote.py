"""Rasters read by URL from a loopback HTTP server with Range support: the same polygons as the local
files, byte ranges rather than whole files, and one-line errors for what a server can do wrong."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.shutil
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from rasterio.transform import from_origin
from werkzeug import Request, Response

from cli.main import cli
from conftest import ORIGIN, UTM, smooth_scene
from geocd.data.remote import file_stem, gdal_path, is_remote, remote_problem
from geocd.data.stac import is_stac_item
from geocd.demo import write_demo_pair

if TYPE_CHECKING:
    import pystac


@dataclass(frozen=True)
class Served:
    """One request the server answered: method, path, Range header and body bytes sent."""

    method: str
    path: str
    range: str | None
    status: int
    sent: int


class FileServer:
    """Serves the files of ``folder`` with byte ranges (HTTP 206), 404 for others, and answers 403 for
    ``private.*`` and 503 for ``busy.*``; records every request."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log: list[Served] = []

    def __call__(self, request: Request) -> Response:
        path = self.folder / request.path.lstrip("/")
        if path.stem in ("private", "busy"):
            response = Response(path.stem, status=403 if path.stem == "private" else 503)
        elif not path.is_file():
            response = Response("not found", status=404)
        else:
            body = path.read_bytes()
            response = Response(body, mimetype="application/octet-stream")
            response = response.make_conditional(request, accept_ranges=True, complete_length=len(body))
        sent = response.content_length or 0 if request.method == "GET" else 0
        self.log.append(Served(request.method, request.path, request.headers.get("Range"), response.status_code, sent))
        return response

    def served(self, name: str) -> list[Served]:
        """The requests for file ``name``."""
        return [s for s in self.log if s.path == f"/{name}"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo pair as local GeoTIFFs and as COGs (256-pixel blocks, overviews) in ``served/``,
    and an HTML page named like a raster (what an expired link may answer)."""
    folder = tmp_path_factory.mktemp("remote")
    pair = write_demo_pair(folder / "local", size=256)
    served = folder / "served"
    served.mkdir()
    for path in (pair.before, pair.after):
        rasterio.shutil.copy(path, served / path.name, driver="COG", blocksize=256, compress="deflate")
    (served / "login.tif").write_text("<html><body>please log in</body></html>\n" * 40)
    for path in (pair.before, pair.after):
        write_item(path, served, f"./{path.stem}_{{band}}.tif").save_object(include_self_link=False)
    return folder


S2_BANDS = (("red", "B04"), ("green", "B03"), ("blue", "B02"))
"""Asset keys and eo:bands names of the demo pair's bands, as Sentinel-2 items on Earth Search name them."""


def write_item(raster: Path, folder: Path, href: str) -> pystac.Item:
    """A STAC item ``folder/STEM.json`` (not yet saved) whose assets are ``raster``'s bands, written to ``folder`` as
    single-band COGs; ``href`` (with ``{band}``) is each asset's href, plus a thumbnail asset."""
    import datetime

    import pystac

    item = pystac.Item(f"demo-{raster.stem}", geometry=None, bbox=None, datetime=datetime.datetime(2024, 6, 1), properties={})
    with rasterio.open(raster) as src:
        for index, (key, name) in enumerate(S2_BANDS, start=1):
            with rasterio.open(folder / f"{raster.stem}_{name}.tif", "w", driver="COG", width=src.width, height=src.height,
                               count=1, dtype=src.dtypes[0], crs=src.crs, transform=src.transform, blocksize=256) as dst:
                dst.write(src.read(index), 1)
            item.add_asset(key, pystac.Asset(href.format(band=name), media_type=pystac.MediaType.COG, roles=["data"],
                                             extra_fields={"eo:bands": [{"name": name, "common_name": key}]}))
    item.add_asset("thumbnail", pystac.Asset("./thumb.jpg", media_type=pystac.MediaType.JPEG, roles=["thumbnail"]))
    item.set_self_href(str(folder / f"{raster.stem}.json"))
    return item


@pytest.fixture()
def server(files: Path) -> Iterator[tuple[HTTPServer, FileServer]]:
    """A threaded HTTP server on 127.0.0.1 serving ``files/served``."""
    httpd = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    handler = FileServer(files / "served")
    httpd.expect_request(re.compile("/.*")).respond_with_handler(handler)
    httpd.start()
    yield httpd, handler
    httpd.clear()
    httpd.stop()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def polygons(path: Path) -> tuple[list, list[bytes]]:
    """Attribute rows (NaN as None) and WKB geometries of a change GeoPackage."""
    frame = pyogrio.read_dataframe(path, layer="changes")
    attributes = frame.drop(columns="geometry").astype(object)
    return attributes.where(attributes.notna(), None).values.tolist(), [g.wkb for g in frame.geometry]


@pytest.fixture(scope="module")
def local_polygons(files: Path) -> tuple[list, list[bytes]]:
    """The polygons of ``geocd predict`` on the local demo pair (default model); its change raster goes
    to ``served/change.tif``."""
    out = files / "local.gpkg"
    code, output = run("predict", str(files / "local" / "before.tif"), str(files / "local" / "after.tif"), "-o", str(out),
                       "--raster", str(files / "served" / "change.tif"), "-q")
    assert code == 0, output
    found = polygons(out)
    assert len(found[1]) > 1, "the demo pair shows changes"
    return found


def test_predict_by_url_gives_the_local_polygons_by_byte_ranges(server, files: Path, tmp_path: Path,
                                                                 local_polygons) -> None:
    httpd, handler = server
    out = tmp_path / "remote.gpkg"
    code, output = run("predict", httpd.url_for("/before.tif"), httpd.url_for("/after.tif"), "-o", str(out), "-q")
    assert code == 0, output
    assert polygons(out) == local_polygons
    for name in ("before.tif", "after.tif"):
        gets = [s for s in handler.served(name) if s.method == "GET"]
        assert gets and all(s.range is not None and s.status == 206 for s in gets), gets
    assert {s.path for s in handler.log} == {"/before.tif", "/after.tif"}  # no side-car probes (.aux.xml, .ovr)


def test_the_library_sets_its_own_remote_reads(server, tmp_path: Path, local_polygons) -> None:
    """``predict()`` called from Python (no CLI) reads URLs with the same GDAL options: no side-car probes."""
    from geocd.inference.predict import PredictOutputs, predict

    httpd, handler = server
    out = tmp_path / "library.gpkg"
    predict(httpd.url_for("/before.tif"), httpd.url_for("/after.tif"), outputs=PredictOutputs(vectors=out))
    assert polygons(out) == local_polygons
    assert {s.path for s in handler.log} == {"/before.tif", "/after.tif"}


def test_gdal_vsicurl_paths_are_inputs_too(server, tmp_path: Path, local_polygons) -> None:
    httpd, _ = server
    out = tmp_path / "vsi.gpkg"
    code, output = run("predict", f"/vsicurl/{httpd.url_for('/before.tif')}", f"/vsicurl/{httpd.url_for('/after.tif')}",
                       "-o", str(out), "-q")
    assert code == 0, output
    assert polygons(out) == local_polygons


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["404", "403", "503", "unreachable", "not a raster"])
def test_remote_failures_are_one_line_exit_2_and_write_nothing(server, files: Path, tmp_path: Path,
                                                                tiny_checkpoint: Path, case: str) -> None:
    httpd, handler = server
    bad, problem = {
        "404": (httpd.url_for("/missing.tif"), "not found (HTTP 404)"),
        "403": (httpd.url_for("/private.tif"), "access denied (HTTP 403)"),
        "503": (httpd.url_for("/busy.tif"), "refused by the server (HTTP 503)"),
        "unreachable": (f"http://127.0.0.1:{free_port()}/before.tif", "cannot be reached (Failed to connect to 127.0.0.1"),
        "not a raster": (httpd.url_for("/login.tif"), "is not a raster GDAL can read (the server sent something else)"),
    }[case]
    out = tmp_path / "out"
    out.mkdir()
    code, output = run("predict", httpd.url_for("/before.tif"), bad, "-o", str(out / "c.gpkg"), "--model",
                       str(tiny_checkpoint), "-q")
    assert code == 2
    assert len(output.strip().splitlines()) == 1
    assert output.startswith(f"geocd: error: {bad}: {problem}"), output
    assert list(out.iterdir()) == []
    if case == "503":  # retried 3 times (GDAL_HTTP_MAX_RETRY), then given up
        assert len(handler.served("busy.tif")) == 4


def test_predicting_a_window_of_a_large_remote_cog_reads_only_its_blocks(server, files: Path, tmp_path: Path,
                                                                        tiny_checkpoint: Path) -> None:
    """'after' covers 128 x 128 pixels of a 2048 x 2048 'before' COG: the server sends a small part of it."""
    httpd, handler = server
    noise = np.random.default_rng(3).integers(0, 60, (3, 2048, 2048))
    large = (np.tile(smooth_scene(256, 256), (1, 8, 8)) + noise).astype(np.uint8)
    plain = tmp_path / "large.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=2048, height=2048, count=3, dtype="uint8", crs=UTM,
                       transform=from_origin(*ORIGIN, 1.0, 1.0)) as dst:
        dst.write(large)
    rasterio.shutil.copy(plain, files / "served" / "large.tif", driver="COG", blocksize=256, compress="deflate")
    window = (slice(None), slice(1000, 1128), slice(600, 728))
    after = tmp_path / "after.tif"
    with rasterio.open(after, "w", driver="GTiff", width=128, height=128, count=3, dtype="uint8", crs=UTM,
                       transform=from_origin(ORIGIN[0] + 600, ORIGIN[1] - 1000, 1.0, 1.0)) as dst:
        dst.write(large[window])
    code, output = run("predict", httpd.url_for("/large.tif"), str(after), "--raster", str(tmp_path / "c.tif"),
                       "--model", str(tiny_checkpoint), "-q")
    assert code == 0, output
    size = (files / "served" / "large.tif").stat().st_size
    sent = sum(s.sent for s in handler.served("large.tif"))
    assert all(s.range is not None for s in handler.served("large.tif") if s.method == "GET")
    assert sent < size / 10, (sent, size)


def test_remote_paths_and_their_problems() -> None:
    assert all(map(is_remote, ["https://a.b/c.tif", "S3://bucket/k.tif", "gs://b/k", "az://c/k", "/vsicurl/http://x/y"]))
    assert not any(map(is_remote, ["before.tif", "/data/x.tif", "file:///x.tif", "C:/data/x.tif"]))
    assert gdal_path("s3://bucket/key.tif") == "/vsis3/bucket/key.tif"
    assert gdal_path("https://h/k.tif") == "/vsicurl/https://h/k.tif"
    assert file_stem("https://h/a/scene.tif?sig=1") == "scene" and file_stem("/data/scene.tif") == "scene"
    assert remote_problem(OSError("HTTP response code: 403")) == "access denied (HTTP 403)"
    assert is_stac_item("https://h/v1/collections/sentinel-2-l2a/items/S2B_33UUP_20230805_0_L2A")
    assert is_stac_item("https://h/a/item.JSON?x=1") and is_stac_item("item.json")
    assert not is_stac_item("https://h/v1/collections/sentinel-2-l2a/items") and not is_stac_item("https://h/B04.tif")


def test_vectorize_reads_a_change_raster_by_url(server, files: Path, tmp_path: Path, local_polygons) -> None:
    httpd, _ = server
    change = files / "served" / "change.tif"
    for source, out in ((str(change), tmp_path / "local.gpkg"), (httpd.url_for("/change.tif"), tmp_path / "url.gpkg")):
        code, output = run("vectorize", source, "-o", str(out))
        assert code == 0, output
    assert polygons(tmp_path / "url.gpkg") == polygons(tmp_path / "local.gpkg")
    code, output = run("vectorize", httpd.url_for("/gone.tif"), "-o", str(tmp_path / "gone.gpkg"))
    assert (code, output) == (2, f"geocd: error: {httpd.url_for('/gone.tif')}: not found (HTTP 404)\n")


def served_archive(files: Path, httpd: HTTPServer) -> tuple[Path, Path]:
    """A labelled synthetic archive (conftest) and the same archive listing its rasters by URL."""
    from conftest import synthetic_archive

    local = synthetic_archive(files / "served" / "archive", pairs=2)
    rows = local.read_text().splitlines()
    header = rows[0].split(",")
    remote = files / "remote.csv"
    lines = [rows[0]]
    for row in rows[1:]:
        values = row.split(",")
        lines.append(",".join(httpd.url_for(f"/archive/{v}") if header[i] in ("before", "after", "label_before",
                                                                               "label_after", "change") and v else v
                              for i, v in enumerate(values)))
    remote.write_text("\n".join(lines) + "\n")
    return local, remote


def test_evaluate_reads_an_archive_of_urls(server, files: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    import json

    httpd, _ = server
    local, remote = served_archive(files, httpd)
    scores = []
    for manifest, out in ((local, tmp_path / "local"), (remote, tmp_path / "remote")):
        code, output = run("evaluate", str(manifest), "--model", str(tiny_checkpoint), "-o", str(out))
        assert code == 0, output
        scores.append(json.loads((out / "evaluation.json").read_text()))
    assert scores[1] == scores[0]
    assert [p["name"] for p in scores[1]["pairs"]] == ["p0", "p1"] and not scores[1]["failed"]


def test_predict_archive_reads_urls_and_a_missing_one_fails_its_pair_alone(server, files: Path, tmp_path: Path,
                                                                            tiny_checkpoint: Path) -> None:
    httpd, handler = server
    _, remote = served_archive(files, httpd)
    rows = remote.read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"name,before,after\np0,{first['before']},{first['after']}\n"
                        f"gone,{first['before']},{httpd.url_for('/archive/gone.tif')}\n")
    result = CliRunner().invoke(cli, ["predict-archive", str(manifest), "-o", str(tmp_path / "out"), "--model",
                                      str(tiny_checkpoint), "--backend", "torch", "--workers", "1", "-q"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == f"geocd: error: {httpd.url_for('/archive/gone.tif')}: not found (HTTP 404)"
    index = pyogrio.read_dataframe(tmp_path / "out" / "index.gpkg")
    assert list(index["status"]) == ["ok", "failed"] and list(index["before"]) == [first["before"]] * 2
    assert (tmp_path / "out" / "p0.gpkg").is_file()
    assert all(s.range is not None for s in handler.log if s.method == "GET" and s.path.startswith("/archive/p0"))


def test_predict_stac_items_by_url_gives_the_local_polygons(server, files: Path, tmp_path: Path, local_polygons) -> None:
    import json

    httpd, handler = server
    out, report = tmp_path / "stac.gpkg", tmp_path / "stac.json"
    code, output = run("predict", httpd.url_for("/before.json"), httpd.url_for("/after.json"), "--bands", "red,green,blue",
                       "-o", str(out), "--report", str(report), "-q")
    assert code == 0, output
    assert polygons(out) == local_polygons
    before = json.loads(report.read_text())["inputs"]["before"]
    assert before["path"] == httpd.url_for("/before.json") and before["stac_item"] == "demo-before"
    assert before["stac_assets"] == {key: httpd.url_for(f"/before_{name}.tif") for key, name in S2_BANDS}
    gets = [s for s in handler.log if s.method == "GET" and s.path.endswith(".tif")]
    assert {s.path for s in gets} == {f"/{date}_{name}.tif" for date in ("before", "after") for _, name in S2_BANDS}
    assert all(s.range is not None and s.status == 206 for s in gets)


def test_a_local_item_with_remote_assets_takes_eo_band_names(server, files: Path, tmp_path: Path, local_polygons) -> None:
    httpd, _ = server
    items = []
    for date in ("before", "after"):
        item = write_item(files / "local" / f"{date}.tif", tmp_path, httpd.url_for(f"/{date}_{{band}}.tif"))
        item.save_object(include_self_link=False)
        items.append(str(tmp_path / f"{date}.json"))
    out = tmp_path / "stac.gpkg"
    code, output = run("predict", *items, "--bands", "B04,B03,B02", "-o", str(out), "-q")
    assert code == 0, output
    assert polygons(out) == local_polygons


@pytest.mark.parametrize("case", ["no bands", "band numbers", "unknown band", "missing item", "missing asset",
                                  "not an item", "s3 item"])
def test_stac_failures_are_one_line_exit_2(server, files: Path, tmp_path: Path, tiny_checkpoint: Path, case: str) -> None:
    httpd, _ = server
    item = httpd.url_for("/before.json")
    broken = tmp_path / "broken.json"
    write_item(files / "local" / "before.tif", tmp_path, httpd.url_for("/gone_{band}.tif")).save_object(
        include_self_link=False, dest_href=str(broken))
    (tmp_path / "list.json").write_text("[1, 2]")
    must_name = "--bands must name the STAC item's assets or bands"
    bands, named, problem = {
        "no bands": ([], item, must_name),
        "band numbers": (["--bands", "1,2,3"], item, must_name),
        "unknown band": (["--bands", "red,green,nir"], item,
                         "has no asset or band named 'nir' (its raster assets: blue, green, red)"),
        "missing item": (["--bands", "red,green,blue"], httpd.url_for("/gone.json"), "not found (HTTP 404)"),
        "missing asset": (["--bands", "red,green,blue"], str(broken),
                          f"asset 'red' ({httpd.url_for('/gone_B04.tif')}): not found (HTTP 404)"),
        "not an item": (["--bands", "red,green,blue"], str(tmp_path / "list.json"), "is not a STAC item (not a JSON object)"),
        "s3 item": (["--bands", "red"], "s3://bucket/item.json", "a STAC item is read from a local file or an http(s) URL"),
    }[case]
    out = tmp_path / "out"
    out.mkdir()
    code, output = run("predict", named, named, *bands, "-o", str(out / "c.gpkg"), "--model", str(tiny_checkpoint), "-q")
    assert code == 2
    assert len(output.strip().splitlines()) == 1
    assert output.startswith(f"geocd: error: {named}: {problem}"), output
    assert list(out.iterdir()) == []


def test_assets_of_several_resolutions_stack_on_the_finest_grid(tmp_path: Path) -> None:
    import datetime

    import pystac

    from geocd.data.rasters import grid_of, open_raster

    fine = np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64)
    coarse = np.arange(32 * 32, dtype=np.uint16).reshape(1, 32, 32)
    item = pystac.Item("mixed", geometry=None, bbox=None, datetime=datetime.datetime(2024, 6, 1), properties={})
    for key, data, pixel in (("swir16", coarse, 2.0), ("nir", fine, 1.0)):
        with rasterio.open(tmp_path / f"{key}.tif", "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                           count=1, dtype="uint16", crs=UTM, transform=from_origin(*ORIGIN, pixel, pixel), nodata=0) as dst:
            dst.write(data)
        item.add_asset(key, pystac.Asset(f"./{key}.tif", media_type=pystac.MediaType.GEOTIFF))
    item.set_self_href(str(tmp_path / "item.json"))
    item.save_object(include_self_link=False)
    with open_raster(tmp_path / "item.json", ("swir16", "nir")) as src:
        assert grid_of(src).transform == from_origin(*ORIGIN, 1.0, 1.0) and (src.width, src.height) == (64, 64)
        assert src.descriptions == ("swir16", "nir") and src.nodatavals == (0, 0)
        stacked = src.read()
    assert np.array_equal(stacked[1], fine[0])
    assert np.array_equal(stacked[0], coarse[0].repeat(2, 0).repeat(2, 1))  # nearest neighbour upsampling


@pytest.fixture()
def s3(files: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local S3-compatible server (moto) holding the demo COGs in bucket ``geocd``; GDAL's AWS_* settings point at it."""
    server_module = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    settings = {"AWS_S3_ENDPOINT": f"{host}:{port}", "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
    client.create_bucket(Bucket="geocd")
    for name in ("before.tif", "after.tif"):
        client.upload_file(str(files / "served" / name), "geocd", f"demo/{name}")
    yield "s3://geocd/demo"
    server.stop()


def test_predict_s3_urls_on_a_local_s3_server(s3: str, tmp_path: Path, local_polygons) -> None:
    out = tmp_path / "s3.gpkg"
    code, output = run("predict", f"{s3}/before.tif", f"{s3}/after.tif", "-o", str(out), "-q")
    assert code == 0, output
    assert polygons(out) == local_polygons
    code, output = run("predict", f"{s3}/before.tif", f"{s3}/gone.tif", "-o", str(tmp_path / "gone.gpkg"), "-q")
    assert (code, output) == (2, f"geocd: error: {s3}/gone.tif: not found\n")
    assert not (tmp_path / "gone.gpkg").exists()
