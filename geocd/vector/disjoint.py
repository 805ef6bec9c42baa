"""A disjoint-set forest (union-find) over integer ids."""

from __future__ import annotations

import numpy as np


class DisjointSet:
    """Grow with :meth:`add`, join with :meth:`union`, read components with :meth:`roots`."""

    def __init__(self) -> None:
        self._parent: list[int] = []

    def add(self, count: int) -> int:
        """Add ``count`` singleton ids; return the first."""
        first = len(self._parent)
        self._parent.extend(range(first, first + count))
        return first

    def find(self, item: int) -> int:
        """The representative of ``item``'s set (with path halving)."""
        parent = self._parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        """Join the sets of ``a`` and ``b``; the smaller representative wins."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        """The representative of every id, as an array."""
        parent = np.asarray(self._parent, dtype=np.int64)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent
            parent = grand
