"""Rasters read by URL from a loopback HTTP server with Range support: the same polygons as the local
files, byte ranges rather than whole files, and one-line errors for what a server can do wrong."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
from geocd.demo import write_demo_pair


@dataclass(frozen=True)
class Served:
    """One request the server answered: method, path, Range header and body bytes sent."""

    method: str
    path: str
    range: str | None
    status: int
    sent: int


class FileServer:
    """Serves the files of ``folder`` with byte ranges (HTTP 206), 404 for others; records every request."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log: list[Served] = []

    def __call__(self, request: Request) -> Response:
        path = self.folder / request.path.lstrip("/")
        if not path.is_file():
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
    pair = write_demo_pair(folder / "local")
    served = folder / "served"
    served.mkdir()
    for path in (pair.before, pair.after):
        rasterio.shutil.copy(path, served / path.name, driver="COG", blocksize=256, compress="deflate")
    (served / "login.tif").write_text("<html><body>please log in</body></html>\n" * 40)
    return folder


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
    """Attribute rows and WKB geometries of a change GeoPackage."""
    frame = pyogrio.read_dataframe(path, layer="changes")
    return frame.drop(columns="geometry").values.tolist(), [g.wkb for g in frame.geometry]


@pytest.fixture(scope="module")
def local_polygons(files: Path) -> tuple[list, list[bytes]]:
    """The polygons of ``geocd predict`` on the local demo pair (default model)."""
    out = files / "local.gpkg"
    code, output = run("predict", str(files / "local" / "before.tif"), str(files / "local" / "after.tif"), "-o", str(out),
                       "-q")
    assert code == 0, output
    found = polygons(out)
    assert found[1], "the demo pair shows changes"
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


@pytest.mark.parametrize("case", ["404", "unreachable", "not a raster"])
def test_remote_failures_are_one_line_exit_2_and_write_nothing(server, files: Path, tmp_path: Path,
                                                                tiny_checkpoint: Path, case: str) -> None:
    httpd, _ = server
    bad, problem = {
        "404": (httpd.url_for("/missing.tif"), "not found (HTTP 404)"),
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
