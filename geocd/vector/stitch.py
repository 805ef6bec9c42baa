"""Join polygon pieces cut at strip seams, and group regions into changed blobs.

Strips are added top to bottom. A piece touching the previous strip's last row continues
the region above it when the pixels on both sides of the seam carry the same label; such
pieces are unioned once the region ends. Touching pieces of any label (within a strip or
across a seam) belong to the same blob, so callers can judge blob areas exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import shapely

from geocd.vector.disjoint import DisjointSet
from geocd.vector.polygonize import StripPieces


@dataclass(frozen=True)
class Regions:
    """Regions: one polygon (pixel coordinates) per 4-connected area of equal label."""

    geometries: np.ndarray
    labels: np.ndarray
    pixels: np.ndarray
    probability_sum: np.ndarray
    probability_max: np.ndarray
    blobs: np.ndarray
    """Id of the changed blob (touching regions of any label) each region belongs to."""

    def take(self, keep: np.ndarray) -> Regions:
        """The regions selected by a boolean mask or an index array."""
        return Regions(*(getattr(self, f.name)[keep] for f in fields(self)))

    @staticmethod
    def concatenate(parts: list[Regions]) -> Regions:
        """All regions of ``parts``, in order."""
        if not parts:
            empty = np.empty(0, np.int64)
            return Regions(np.empty(0, object), empty, empty, empty, empty, empty)
        return Regions(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Regions)))


@dataclass
class _OpenRegion:
    """A region reaching the last row added so far; its pieces are unioned when it ends."""

    label: int
    blob: int
    pieces: list[shapely.Polygon] = field(default_factory=list)
    pixels: int = 0
    probability_sum: int = 0
    probability_max: int = 0

    def absorb(self, pieces: list[shapely.Polygon], pixels: int, total: int, peak: int) -> None:
        self.pieces.extend(pieces)
        self.pixels += pixels
        self.probability_sum += total
        self.probability_max = max(self.probability_max, peak)


class SeamStitcher:
    """Accumulate strips with :meth:`add` (and :meth:`close` after a gap); read :meth:`regions`."""

    def __init__(self) -> None:
        self._blobs = DisjointSet()
        self._open: list[_OpenRegion] = []
        self._last_row: np.ndarray | None = None
        self._done: list[Regions] = []

    def add(self, pieces: StripPieces) -> None:
        """Add the pieces of the strip directly below the previous one."""
        first_blob = self._blobs.add(len(pieces))
        for a, b in pieces.neighbours.tolist():
            self._blobs.union(first_blob + a, first_blob + b)
        links = self._seam_links(pieces)
        for region, piece in links.tolist():
            self._blobs.union(self._open[region].blob, first_blob + piece)

        at_bottom = np.zeros(len(pieces), bool)
        at_bottom[pieces.last_row[pieces.last_row >= 0]] = True
        on_seam = at_bottom.copy()
        on_seam[links[:, 1]] = True
        alone = np.flatnonzero(~on_seam)
        self._done.append(
            Regions(
                pieces.geometries[alone], pieces.labels[alone], pieces.pixels[alone],
                pieces.probability_sum[alone], pieces.probability_max[alone], first_blob + alone,
            )
        )

        regions, piece_region = self._continue(pieces, links, np.flatnonzero(on_seam), first_blob)
        reaching = set(piece_region[at_bottom].tolist())
        self._finish([r for i, r in enumerate(regions) if i not in reaching])
        still_open = sorted(reaching)
        self._open = [regions[i] for i in still_open]
        open_index = np.full(len(regions) + 1, -1, np.int64)
        open_index[still_open] = np.arange(len(still_open))
        last_row = np.where(pieces.last_row >= 0, piece_region[pieces.last_row], -1)
        self._last_row = open_index[last_row]

    def close(self) -> None:
        """End every open region: the next strip added does not continue them."""
        self._finish(self._open)
        self._open = []
        self._last_row = None

    def regions(self) -> Regions:
        """All regions finished so far (call :meth:`close` first to include the open ones)."""
        done = Regions.concatenate(self._done)
        return replace(done, blobs=self._blobs.roots()[done.blobs])

    def _seam_links(self, pieces: StripPieces) -> np.ndarray:
        """Distinct ``(open region, piece)`` pairs facing each other across the seam above."""
        if self._last_row is None:
            return np.empty((0, 2), np.int64)
        facing = (self._last_row >= 0) & (pieces.first_row >= 0)
        return np.unique(np.stack([self._last_row[facing], pieces.first_row[facing]], axis=1), axis=0)

    def _continue(
        self, pieces: StripPieces, links: np.ndarray, seam_pieces: np.ndarray, first_blob: int
    ) -> tuple[list[_OpenRegion], np.ndarray]:
        """Merge the open regions with the seam pieces of equal label they touch.

        Returns the merged regions and, per piece, the index of its merged region (-1: none).
        """
        old = len(self._open)
        continued = DisjointSet()
        continued.add(old + len(pieces))
        for region, piece in links.tolist():
            if self._open[region].label == pieces.labels[piece]:
                continued.union(region, old + piece)
        roots = continued.roots()
        merged: dict[int, _OpenRegion] = {}
        for index, region in enumerate(self._open):
            target = merged.setdefault(int(roots[index]), _OpenRegion(region.label, region.blob))
            target.absorb(region.pieces, region.pixels, region.probability_sum, region.probability_max)
        for piece in seam_pieces.tolist():
            start = _OpenRegion(int(pieces.labels[piece]), first_blob + piece)
            target = merged.setdefault(int(roots[old + piece]), start)
            target.absorb(
                [pieces.geometries[piece]], int(pieces.pixels[piece]),
                int(pieces.probability_sum[piece]), int(pieces.probability_max[piece]),
            )
        order = {root: i for i, root in enumerate(merged)}
        piece_region = np.full(len(pieces), -1, np.int64)
        piece_region[seam_pieces] = [order[int(roots[old + p])] for p in seam_pieces.tolist()]
        return list(merged.values()), piece_region

    def _finish(self, regions: list[_OpenRegion]) -> None:
        if regions:
            self._done.append(
                Regions(
                    np.array([_union(r.pieces) for r in regions], dtype=object),
                    np.array([r.label for r in regions], np.int64),
                    np.array([r.pixels for r in regions], np.int64),
                    np.array([r.probability_sum for r in regions], np.int64),
                    np.array([r.probability_max for r in regions], np.int64),
                    np.array([r.blob for r in regions], np.int64),
                )
            )


def _union(pieces: list[shapely.Polygon]) -> shapely.Polygon:
    """One polygon from pieces sharing seam edges, without the seam's leftover collinear vertices."""
    if len(pieces) == 1:
        return pieces[0]
    return shapely.simplify(shapely.union_all(pieces), 0.0)
