"""Join polygon pieces cut at strip seams into whole change regions, and sum up their pairs.

Strips are added top to bottom. A piece touching the previous strip's last row continues the
region above it; such pieces are unioned once the region ends. A region's (from, to) pair counts
are summed over all its pieces before its majority pair is chosen (:func:`geocd.vector.pairs.majority_pairs`),
so the result does not depend on where the strips were cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import shapely

from geocd.vector.disjoint import DisjointSet
from geocd.vector.pairs import majority_pairs
from geocd.vector.polygonize import StripPieces


@dataclass(frozen=True)
class Regions:
    """Change regions: one polygon (pixel coordinates) per 4-connected area of changed pixels."""

    geometries: np.ndarray
    labels: np.ndarray
    """The majority (from, to) pair of each region (:func:`geocd.vector.pairs.encode_pairs` labels)."""
    pixels: np.ndarray
    type_pixels: np.ndarray
    """Pixels of the majority pair."""
    from_pixels: np.ndarray
    """Pixels whose from class is the majority pair's."""
    to_pixels: np.ndarray
    """Pixels whose to class is the majority pair's."""
    probability_sum: np.ndarray
    probability_max: np.ndarray

    def take(self, keep: np.ndarray) -> Regions:
        """The regions selected by a boolean mask or an index array."""
        return Regions(*(getattr(self, f.name)[keep] for f in fields(self)))

    @staticmethod
    def concatenate(parts: list[Regions]) -> Regions:
        """All regions of ``parts``, in order."""
        if not parts:
            empty = np.empty(0, np.int64)
            return Regions(np.empty(0, object), *(empty for _ in fields(Regions)[1:]))
        return Regions(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Regions)))

    @staticmethod
    def of(geometries: np.ndarray, pair_counts: np.ndarray, probability_sum: np.ndarray, probability_max: np.ndarray,
           num_classes: int) -> Regions:
        """Regions from their polygons, pair counts ``[n, (K + 1)²]`` and probability statistics."""
        labels, type_pixels, from_pixels, to_pixels = majority_pairs(pair_counts, num_classes)
        return Regions(geometries, labels, pair_counts.sum(1), type_pixels, from_pixels, to_pixels,
                       probability_sum, probability_max)


@dataclass
class _OpenRegion:
    """A region reaching the last row added so far; its pieces are unioned when it ends."""

    pair_counts: np.ndarray
    pieces: list[shapely.Polygon] = field(default_factory=list)
    probability_sum: int = 0
    probability_max: int = 0

    def absorb(self, pieces: list[shapely.Polygon], pair_counts: np.ndarray, total: int, peak: int) -> None:
        self.pieces.extend(pieces)
        self.pair_counts = self.pair_counts + pair_counts
        self.probability_sum += total
        self.probability_max = max(self.probability_max, peak)


class SeamStitcher:
    """Accumulate strips with :meth:`add` (and :meth:`close` after a gap); read :meth:`regions`.

    ``num_classes`` is K, the schema's land-cover classes (pairs are counted over ids 0..K).
    """

    def __init__(self, num_classes: int) -> None:
        self._classes = num_classes
        self._open: list[_OpenRegion] = []
        self._last_row: np.ndarray | None = None
        self._done: list[Regions] = []

    def add(self, pieces: StripPieces) -> None:
        """Add the pieces of the strip directly below the previous one."""
        links = self._seam_links(pieces)
        at_bottom = np.zeros(len(pieces), bool)
        at_bottom[pieces.last_row[pieces.last_row >= 0]] = True
        on_seam = at_bottom.copy()
        on_seam[links[:, 1]] = True
        alone = np.flatnonzero(~on_seam)
        self._done.append(Regions.of(pieces.geometries[alone], pieces.pair_counts[alone], pieces.probability_sum[alone],
                                     pieces.probability_max[alone], self._classes))

        regions, piece_region = self._continue(pieces, links, np.flatnonzero(on_seam))
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
        return Regions.concatenate(self._done)

    def _seam_links(self, pieces: StripPieces) -> np.ndarray:
        """Distinct ``(open region, piece)`` pairs facing each other across the seam above."""
        if self._last_row is None:
            return np.empty((0, 2), np.int64)
        facing = (self._last_row >= 0) & (pieces.first_row >= 0)
        return np.unique(np.stack([self._last_row[facing], pieces.first_row[facing]], axis=1), axis=0)

    def _continue(self, pieces: StripPieces, links: np.ndarray, seam_pieces: np.ndarray,
                  ) -> tuple[list[_OpenRegion], np.ndarray]:
        """Merge the open regions with the seam pieces they touch.

        Returns the merged regions and, per piece, the index of its merged region (-1: none).
        """
        old = len(self._open)
        continued = DisjointSet()
        continued.add(old + len(pieces))
        for region, piece in links.tolist():
            continued.union(region, old + piece)
        roots = continued.roots()
        merged: dict[int, _OpenRegion] = {}
        empty = np.zeros(pieces.pair_counts.shape[1], np.int64)
        for index, region in enumerate(self._open):
            target = merged.setdefault(int(roots[index]), _OpenRegion(empty))
            target.absorb(region.pieces, region.pair_counts, region.probability_sum, region.probability_max)
        for piece in seam_pieces.tolist():
            target = merged.setdefault(int(roots[old + piece]), _OpenRegion(empty))
            target.absorb([pieces.geometries[piece]], pieces.pair_counts[piece],
                          int(pieces.probability_sum[piece]), int(pieces.probability_max[piece]))
        order = {root: i for i, root in enumerate(merged)}
        piece_region = np.full(len(pieces), -1, np.int64)
        piece_region[seam_pieces] = [order[int(roots[old + p])] for p in seam_pieces.tolist()]
        return list(merged.values()), piece_region

    def _finish(self, regions: list[_OpenRegion]) -> None:
        if regions:
            self._done.append(Regions.of(
                np.array([_union(r.pieces) for r in regions], dtype=object),
                np.stack([r.pair_counts for r in regions]),
                np.array([r.probability_sum for r in regions], np.int64),
                np.array([r.probability_max for r in regions], np.int64),
                self._classes,
            ))


def _union(pieces: list[shapely.Polygon]) -> shapely.Polygon:
    """One polygon from pieces sharing seam edges, without the seam's leftover collinear vertices."""
    if len(pieces) == 1:
        return pieces[0]
    return shapely.simplify(shapely.union_all(pieces), 0.0)
