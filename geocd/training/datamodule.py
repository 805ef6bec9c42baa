"""Tiles from archives of labelled pairs, drawn with TorchGeo samplers, as a Lightning DataModule.

Each pair is its own :class:`LabelledPairDataset` (pairs may lie in different CRSs). Training
draws random tiles with one TorchGeo ``RandomGeoSampler`` per pair, the tile budget shared
by pair area, may turn land-cover tiles into synthetic change pairs
(:mod:`geocd.training.synthetic`) and give one date of change tiles differences that are not
change (:mod:`geocd.training.invariance`); validation covers whole validation scenes with ``GridGeoSampler`` tiles that
do not overlap, so each pixel is scored once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import lightning.pytorch as pl
import numpy as np
import rasterio
from torch.utils.data import DataLoader, Dataset, Sampler
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from geocd.data.archive import PairRecord
from geocd.data.labelled import LabelledPairDataset
from geocd.data.pair import PairDataset
from geocd.data.rasters import decimated_shape, read_decimated
from geocd.training.invariance import with_nuisance
from geocd.training.synthetic import synthetic_sample

Item = tuple[int, Any]
"""(pair index, TorchGeo spatial slice)."""


class SyntheticItem(NamedTuple):
    """A synthetic change pair of ``kind`` (:data:`geocd.training.synthetic.PAIR_KINDS`) from the ``target`` and
    ``source`` land-cover tiles, drawn with ``seed``; with ``nuisance``, one date then gets nuisance differences."""

    target: Item
    source: Item
    seed: int
    kind: str = "edit"
    nuisance: bool = False


class NuisanceItem(NamedTuple):
    """A change tile one of whose dates gets nuisance differences (:func:`geocd.training.invariance.with_nuisance`)."""

    item: Item
    seed: int


SYNTHETIC_KINDS = {"edit": 0.8, "unpaired": 0.2}
"""How often each kind of synthetic pair is drawn."""
INVARIANCE_KINDS = {"edit": 0.6, "unpaired": 0.15, "unchanged": 0.25}
"""The same with invariance training, which adds unchanged pairs."""

MIN_STEPS = 4
"""Training steps an epoch has at least unless the epoch length is given: a small archive's tiles are drawn again."""
STATISTICS_MAX_SIDE = 2048
"""Rasters are read at most this many pixels on a side (decimated) for band statistics."""


class ArchiveTiles(Dataset):
    """Samples of several pairs, indexed by ``(pair index, spatial slice)``, a :class:`SyntheticItem` or a
    :class:`NuisanceItem`."""

    def __init__(self, pairs: Sequence[LabelledPairDataset]) -> None:
        self.pairs = list(pairs)

    def __getitem__(self, item: Item | SyntheticItem | NuisanceItem) -> dict[str, Any]:
        if isinstance(item, NuisanceItem):
            return with_nuisance(self[item.item], np.random.default_rng(item.seed))
        if isinstance(item, SyntheticItem):
            rng = np.random.default_rng(item.seed)
            sample = synthetic_sample(self[item.target], self[item.source], rng, item.kind)
            return with_nuisance(sample, rng) if item.nuisance else sample
        index, query = item
        return self.pairs[index][query]

    def __len__(self) -> int:
        return len(self.pairs)


class RandomArchiveSampler(Sampler[Item | SyntheticItem | NuisanceItem]):
    """``length`` random tiles per epoch, shuffled together.

    Pairs fall into groups (e.g. change pairs and single-date land-cover images); group ``g``
    gets ``shares[g]`` of the tiles, shared among its pairs by area (largest remainders round,
    so the counts add up to ``length``), at least one per pair.
    Each tile of a single-date land-cover pair becomes, with probability ``synthetic_share``, a
    :class:`SyntheticItem` whose source is another random land-cover tile of the epoch, of a kind
    drawn from :data:`SYNTHETIC_KINDS` (:data:`INVARIANCE_KINDS` when ``invariance`` > 0). Each
    change tile, real or synthetic, gets nuisance differences on one date with probability
    ``invariance`` (unchanged synthetic pairs always).
    """

    def __init__(
        self, pairs: Sequence[LabelledPairDataset], tile_size: int, length: int, seed: int = 0,
        groups: Sequence[int] | None = None, shares: Sequence[float] = (1.0,), synthetic_share: float = 0.0,
        invariance: float = 0.0,
    ) -> None:
        self.pairs, self.tile_size, self.length, self.seed = list(pairs), tile_size, length, seed
        self.synthetic_share, self.invariance = synthetic_share, invariance
        group = np.zeros(len(self.pairs), int) if groups is None else np.asarray(groups)
        areas = np.array([p.overlap.width * p.overlap.height for p in self.pairs], np.float64)
        group_area = np.bincount(group, weights=areas)[group]
        share = np.asarray(shares, np.float64)[group] / np.asarray(shares, np.float64)[np.unique(group)].sum()
        ideal = length * share * areas / group_area
        counts = np.floor(ideal).astype(int)
        counts[np.argsort(counts - ideal, kind="stable")[:max(0, length - int(counts.sum()))]] += 1
        self.counts = np.maximum(1, counts).tolist()
        self.epoch = 0

    def __iter__(self) -> Iterator[Item | SyntheticItem | NuisanceItem]:
        items: list[Item] = []
        for index, (pair, count) in enumerate(zip(self.pairs, self.counts)):
            items += [(index, query) for query in RandomGeoSampler(pair, self.tile_size, length=count)]
        rng = np.random.default_rng(self.seed + self.epoch)
        drawn = self._with_synthetic(items, rng) if self.synthetic_share > 0 else list(items)
        if self.invariance > 0:
            drawn = [NuisanceItem(item, int(rng.integers(2**31)))
                     if not isinstance(item, SyntheticItem) and not self.pairs[item[0]].record.single_date
                     and rng.random() < self.invariance else item for item in drawn]
        random.Random(self.seed + self.epoch).shuffle(drawn)
        self.epoch += 1
        return iter(drawn)

    def _with_synthetic(self, items: list[Item], rng: np.random.Generator) -> list[Item | SyntheticItem]:
        land = [k for k, (index, _) in enumerate(items) if self.pairs[index].record.single_date]
        out: list[Item | SyntheticItem] = list(items)
        if len(land) < 2:
            return out
        kinds = INVARIANCE_KINDS if self.invariance > 0 else SYNTHETIC_KINDS
        for position, k in enumerate(land):
            if rng.random() < self.synthetic_share:
                source = items[land[(position + rng.integers(1, len(land))) % len(land)]]
                kind = str(rng.choice(list(kinds), p=list(kinds.values())))
                nuisance = kind != "unchanged" and rng.random() < self.invariance
                out[k] = SyntheticItem(items[k], source, int(rng.integers(2**31)), kind, nuisance)
        return out

    def __len__(self) -> int:
        return sum(self.counts)


class GridArchiveSampler(Sampler[Item]):
    """Non-overlapping grid tiles covering every pair completely."""

    def __init__(self, pairs: Sequence[LabelledPairDataset], tile_size: int) -> None:
        self.items = [(i, q) for i, pair in enumerate(pairs) for q in GridGeoSampler(pair, tile_size, tile_size)]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def default_epoch_length(pairs: Sequence[LabelledPairDataset], tile_size: int) -> int:
    """About as many tiles as fit side by side in all pairs."""
    return sum(max(1, round(p.overlap.width * p.overlap.height / tile_size**2)) for p in pairs)


def band_statistics(pairs: Sequence[PairDataset]) -> tuple[list[float], list[float]]:
    """Per-band mean and std over the valid pixels of both dates of ``pairs``, streamed, in the units the
    network sees: after each date's radiometry (:attr:`PairDataset.stretches`).

    Each raster is read once through the pair's own files (:attr:`PairDataset.sources`), decimated
    (:func:`~geocd.data.rasters.decimated_shape`) to at most ``STATISTICS_MAX_SIDE`` pixels a side,
    and only running sums are kept.
    """
    n, sums, squares = 0, np.zeros(len(pairs[0].bands_before)), np.zeros(len(pairs[0].bands_before))
    for pair in pairs:
        for src, bands, stretch in zip(pair.sources, (pair.bands_before, pair.bands_after), pair.stretches):
            data, valid = read_decimated(src, bands, decimated_shape(src.height, src.width, STATISTICS_MAX_SIDE))
            values, finite = stretch.apply(data)
            pixels = values[:, valid & finite].astype(np.float64)
            n += pixels.shape[1]
            sums += pixels.sum(1)
            squares += (pixels**2).sum(1)
    mean = sums / np.maximum(n, 1)
    std = np.sqrt(np.maximum(squares / np.maximum(n, 1) - mean**2, 0))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


class ArchiveDataModule(pl.LightningDataModule):
    """Training and validation tiles of archives split by pair.

    Single-date land-cover records (:attr:`PairRecord.single_date`) may sit beside change
    pairs: they get ``landcover_share`` of the training tiles, ``synthetic_share`` of which become
    synthetic change pairs, and ``invariance`` of the change tiles get nuisance differences
    (:class:`RandomArchiveSampler`); land-cover images finer than
    ``landcover_resolution`` (CRS units, metres on metric grids) are resampled to it.
    """

    def __init__(
        self,
        train: Sequence[PairRecord],
        val: Sequence[PairRecord],
        num_bands: int,
        tile_size: int,
        batch_size: int,
        num_workers: int = 0,
        epoch_length: int | None = None,
        bands: list[int] | None = None,
        seed: int = 0,
        landcover_share: float = 0.5,
        landcover_resolution: float | None = None,
        synthetic_share: float = 0.0,
        invariance: float = 0.0,
    ) -> None:
        super().__init__()
        self.train_pairs = [self._dataset(r, num_bands, bands, tile_size, landcover_resolution) for r in train]
        self.val_pairs = [self._dataset(r, num_bands, bands, tile_size, landcover_resolution) for r in val]
        self.tile_size, self.batch_size, self.num_workers, self.seed = tile_size, batch_size, num_workers, seed
        self.landcover_share, self.synthetic_share, self.invariance = landcover_share, synthetic_share, invariance
        self.epoch_length = epoch_length or max(default_epoch_length(self.train_pairs, tile_size), MIN_STEPS * batch_size)

    @staticmethod
    def _dataset(record: PairRecord, num_bands: int, bands: list[int] | None, tile_size: int,
                 resolution: float | None) -> LabelledPairDataset:
        if record.single_date and resolution is not None:
            with rasterio.open(record.before) as src:
                resolution = resolution if src.res[0] < resolution else None
        else:
            resolution = None
        return LabelledPairDataset(record, num_bands, bands, min_extent=tile_size, resolution=resolution)

    @property
    def epoch_tiles(self) -> int:
        """Training tiles drawn per epoch: the epoch length, or more where every pair gets one."""
        return len(self._train_sampler())

    def _train_sampler(self) -> RandomArchiveSampler:
        groups = [int(p.record.single_date) for p in self.train_pairs]
        return RandomArchiveSampler(self.train_pairs, self.tile_size, self.epoch_length, self.seed,
                                    groups=groups, shares=(1 - self.landcover_share, self.landcover_share),
                                    synthetic_share=self.synthetic_share, invariance=self.invariance)

    def train_dataloader(self) -> DataLoader:
        return self._loader(ArchiveTiles(self.train_pairs), self._train_sampler(), drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(ArchiveTiles(self.val_pairs), GridArchiveSampler(self.val_pairs, self.tile_size), drop_last=False)

    def _loader(self, dataset: Dataset, sampler: Sampler, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, drop_last=drop_last,
        )
