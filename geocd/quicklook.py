"""The quicklook of a prediction: before | after | change overlay in one PNG, to check a result at a glance.

Drawn from the run as it is: the pair as prediction opened it (:class:`geocd.data.pair.PairDataset`: its
files, band choice and per-date stretches), the change map's info and the change polygons; no file is
opened again. The images are read decimated onto one grid over the 'before' grid's extent (longest side
at most :data:`~geocd.data.rasters.DECIMATED_MAX_SIDE` pixels) with GDAL's average resampling ('after'
warped onto that grid), so memory does not grow with the scene.
The change polygons are drawn as the GeoPackage's style draws them: filled with the to class's
colour, outlined with the from class's (over a dark halo), so each change type looks different;
the legend names each type with its polygon count and area. The images show the bands as the
network saw them (the pair's stretches). Rendered with matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.io import DatasetReader

from geocd.changemap import ChangeMapInfo
from geocd.data.pair import PairDataset, warp_onto
from geocd.data.radiometry import Stretch
from geocd.data.rasters import DECIMATED_MAX_SIDE, Grid, read_decimated
from geocd.vector.attributes import ChangeTypeSummary
from geocd.vector.pipeline import ChangePolygons

PANEL_INCHES = 6.0
LEGEND_INCHES = 1.4
DPI = 100
OVERLAY_ALPHA = 0.75
OUTLINE_WIDTH = 1.4
HALO_COLOR = "black"
"""Drawn under each outline, so changes show even where their colours match the ground."""


def render_quicklook(pair: PairDataset, info: ChangeMapInfo, changes: ChangePolygons,
                     path: str | os.PathLike[str]) -> None:
    """Write PNG ``path``: before | after | after with the ``changes`` polygons of the change map of ``pair``.

    The bands are the pair's (the first three shown as RGB, a single band as grey), after its
    stretches; ``info`` gives the threshold. The legend lists the change types with their polygon
    counts and areas; each panel has a scale bar in ground metres. The PNG is
    ``3 * PANEL_INCHES * DPI`` pixels wide whatever the scene size.
    """
    grid = _decimated(pair.grid, DECIMATED_MAX_SIDE)
    (before, after), bands = pair.sources, (pair.bands_before, pair.bands_after)
    after_image = _read_display(after, grid, bands[1], pair.stretches[1])
    panels = (
        ("before", _read_display(before, grid, bands[0], pair.stretches[0]), None),
        ("after", after_image, None),
        (f"change (p \u2265 {info.threshold:g})", after_image, _overlay(changes, grid)),
    )
    title = f"{Path(pair.paths[0]).name} \u2192 {Path(pair.paths[1]).name}"
    figure = _draw(panels, grid, changes.change_types, title)
    figure.savefig(path, format="png", dpi=DPI)


def _draw(panels: Sequence[tuple], grid: Grid, change_types: Sequence[ChangeTypeSummary], title: str) -> Figure:
    """Panels ``(title, RGBA image, (RGBA fill, outlines) or None)`` side by side, scale bars and legend."""
    aspect = min(max(grid.height / grid.width, 0.3), 2.0)
    figure = Figure(figsize=(3 * PANEL_INCHES, PANEL_INCHES * aspect + LEGEND_INCHES), dpi=DPI, layout="constrained")
    figure.suptitle(title)
    metres_per_pixel = _ground_width_m(grid) / grid.width
    for axes, (name, image, changes) in zip(figure.subplots(1, len(panels)), panels):
        axes.imshow(image, interpolation="nearest")
        if changes is not None:
            fill, (lines, colors) = changes
            axes.imshow(fill, interpolation="nearest")
            axes.add_collection(LineCollection(lines, colors=HALO_COLOR, linewidths=OUTLINE_WIDTH + 1.2))
            axes.add_collection(LineCollection(lines, colors=colors, linewidths=OUTLINE_WIDTH))
        axes.set_title(name)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_facecolor("0.85")
        _add_scale_bar(axes, grid.width, metres_per_pixel)
    handles = [
        Patch(facecolor=np.array(t.color) / 255, edgecolor=np.array(t.outline) / 255, linewidth=3,
              label=f"{t.change_type}: {t.polygons} polygon{'' if t.polygons == 1 else 's'}, {_area_text(t.area_m2)}")
        for t in change_types
    ] or [Patch(facecolor="none", edgecolor="none", label="no change found")]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), frameon=False)
    return figure


def _overlay(changes: ChangePolygons, grid: Grid) -> tuple[np.ndarray, tuple[list[np.ndarray], np.ndarray]]:
    """The polygons on ``grid``: a uint8 RGBA fill by to class (every touched pixel, so small ones show),
    and their rings in pixel coordinates with the from class's colour."""
    style = {t.change_type: t for t in changes.change_types}
    types = [style[name] for name in changes.frame["change_type"]]
    fill = np.zeros((grid.height, grid.width, 4), np.uint8)
    if types:
        burned = rasterio.features.rasterize(
            zip(changes.frame.geometry, range(1, len(types) + 1)), out_shape=(grid.height, grid.width),
            transform=grid.transform, all_touched=True, dtype="int32",
        )
        colors = np.array([(0, 0, 0, 0)] + [(*t.color, round(OVERLAY_ALPHA * 255)) for t in types], np.uint8)
        fill = colors[burned]
    rings = shapely.get_parts(shapely.boundary(changes.frame.geometry.to_numpy()), return_index=True)
    pixels = shapely.transform(rings[0], lambda xy: np.stack(~grid.transform * (xy[:, 0], xy[:, 1]), axis=1) - 0.5)
    lines = [shapely.get_coordinates(line) for line in pixels]
    outline = np.array([t.outline for t in types], np.float64).reshape(-1, 3) / 255
    return fill, (lines, outline[rings[1]])


def _decimated(grid: Grid, max_side: int) -> Grid:
    """``grid`` over the same extent with its longest side at most ``max_side`` pixels."""
    scale = max(grid.width, grid.height) / max_side
    if scale <= 1:
        return grid
    width, height = max(1, round(grid.width / scale)), max(1, round(grid.height / scale))
    return Grid(grid.crs, grid.transform * Affine.scale(grid.width / width, grid.height / height), width, height)


def _read_display(src: DatasetReader, grid: Grid, bands: Sequence[int], stretch: Stretch) -> np.ndarray:
    """uint8 RGBA ``[h, w, 4]`` of ``bands`` of ``src`` averaged onto ``grid``, as the network saw them
    (``stretch``; a single band as grey); invalid pixels transparent."""
    shown = list(range(3)) if len(bands) >= 3 else [0] * 3
    view = warp_onto(src, grid, Resampling.average)
    try:
        data, valid = read_decimated(view, bands, (grid.height, grid.width))
    finally:
        if view is not src:  # the pair's own file stays open
            view.close()
    image, finite = stretch.apply(data)
    rgba = np.zeros((*valid.shape, 4), np.uint8)
    rgba[..., :3] = np.clip(np.moveaxis(image[shown], 0, -1), 0, 255)
    rgba[..., 3] = (valid & finite) * 255
    return rgba


def _ground_width_m(grid: Grid) -> float:
    """Geodesic length in metres of the grid's middle row, edge to edge (true ground distance in any CRS)."""
    left, bottom, right, top = grid.bounds
    crs = CRS.from_user_input(grid.crs)
    x = np.linspace(left, right, 65)
    lon, lat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(x, np.full_like(x, (top + bottom) / 2))
    return float(crs.get_geod().line_length(lon, lat))


def _add_scale_bar(axes, width_px: int, metres_per_pixel: float) -> None:  # noqa: ANN001 - matplotlib Axes
    """A scale bar of a round length (1, 2 or 5 x 10^k m) about a fifth of the panel wide."""
    target = width_px * metres_per_pixel / 5
    base = 10 ** math.floor(math.log10(target))
    length = max(m * base for m in (1, 2, 5) if m * base <= target)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    bar = AnchoredSizeBar(axes.transData, length / metres_per_pixel, label, "lower right", pad=0.4, borderpad=0.6,
                          sep=3, frameon=True, size_vertical=max(width_px / 200, 1))
    bar.patch.set_alpha(0.8)
    axes.add_artist(bar)


def _area_text(area_m2: float) -> str:
    """An area in m², ha or km², whichever reads best."""
    if area_m2 < 1e4:
        return f"{area_m2:,.0f} m\u00b2"
    if area_m2 < 1e6:
        return f"{area_m2 / 1e4:,.2f} ha"
    return f"{area_m2 / 1e6:,.2f} km\u00b2"
