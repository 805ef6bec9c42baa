"""The geocd checkpoint: one ``.safetensors`` file with the weights and JSON metadata.

The metadata says how to rebuild the network (:class:`ModelConfig`) and how to feed it:
band order, per-band normalisation, class schema, which land-cover classes were trained,
training tile size and ground resolution. Loading never unpickles anything.

The network's normalisation buffers are stored with the weights (always as float32) and
equal the metadata's ``mean``/``std``; a checkpoint saved before the network held them
gets them from its metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from geocd import __version__
from geocd.atomic import atomic_output
from geocd.data.radiometry import DISPLAY8
from geocd.errors import CheckpointError, InputError
from geocd.models.config import NORMALISATION, ModelConfig
from geocd.options import TrainOptions
from geocd.schema import SECOND, ClassSchema

if TYPE_CHECKING:
    import torch

    from geocd.models.siamese import SiameseChangeNet

DEFAULT_MODEL = Path(__file__).parent / "models" / "default" / "geocd-default.safetensors"
DEFAULT_MODEL_NAME = "default"
"""The name that means :data:`DEFAULT_MODEL` wherever a model is taken (``--model default``; a file of that
name in the working folder is ``./default``)."""
FORMAT_NAME = "geocd-checkpoint"
FORMAT_VERSION = "1"


RESOLUTION_TOLERANCE = 4.0
"""A scene whose pixels are more than this factor finer or coarser than the model's training
resolution (``resolution_m``) is far outside what the model is made for: 0.25-4 m for the
default model, trained at a median 1 m on 0.5-2 m change pairs."""


@dataclass(frozen=True)
class ModelMetadata:
    """What a checkpoint says about its model besides the weights.

    ``radiometry`` is the input the network expects before ``mean``/``std`` normalisation
    (:mod:`geocd.data.radiometry`; ``display8``: 8-bit display imagery, 0..255).
    """

    config: ModelConfig
    bands: tuple[str, ...] = ("red", "green", "blue")
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    radiometry: str = DISPLAY8
    schema: ClassSchema = SECOND
    trained_classes: tuple[int, ...] = ()
    tile_size: int = TrainOptions.tile_size
    resolution_m: float | None = None
    geocd_version: str = __version__
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.config.in_channels
        if not len(self.bands) == len(self.mean) == len(self.std) == n:
            raise ValueError(f"bands, mean and std must each have in_channels={n} entries")
        if self.schema.num_landcover != self.config.num_classes:
            raise ValueError(f"schema has {self.schema.num_landcover} land-cover classes, model {self.config.num_classes}")
        if any(not 1 <= c <= self.config.num_classes for c in self.trained_classes):
            raise ValueError(f"trained_classes must be land-cover ids 1..{self.config.num_classes}")

    @property
    def resolution_range_m(self) -> tuple[float, float] | None:
        """Ground resolutions (metres per pixel) the model is made for (see :data:`RESOLUTION_TOLERANCE`), or None."""
        if self.resolution_m is None:
            return None
        return self.resolution_m / RESOLUTION_TOLERANCE, self.resolution_m * RESOLUTION_TOLERANCE

    @property
    def landcover_trained(self) -> bool:
        """Whether the semantic heads learnt any land-cover class."""
        return bool(self.trained_classes)

    def to_json(self) -> str:
        """Serialise to JSON."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["config"] = self.config.to_dict()
        data["schema"] = self.schema.to_dict()
        return json.dumps(data, sort_keys=True, default=list)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        """Parse :meth:`to_json` output; raises ``KeyError``/``TypeError``/``ValueError`` when malformed."""
        data = json.loads(text)
        data["config"] = ModelConfig(**data["config"])
        data["schema"] = ClassSchema.from_dict(data["schema"])
        for key in ("bands", "mean", "std", "trained_classes"):
            data[key] = tuple(data[key])
        return cls(**data)


class LoadedModel:
    """A network in eval mode with the metadata it was saved with, and where it came from.

    ``model`` is the network, or a :func:`functools.partial` that builds it when :attr:`model` is first used
    (:func:`load_checkpoint`'s: a run of a cached ONNX graph never builds the PyTorch network, nor imports PyTorch).
    """

    def __init__(self, model: SiameseChangeNet | partial[SiameseChangeNet], metadata: ModelMetadata,
                 path: Path) -> None:
        self._model, self.metadata, self.path = model, metadata, path

    @cached_property
    def model(self) -> SiameseChangeNet:
        """The network, built now if it was not yet."""
        return self._model() if isinstance(self._model, partial) else self._model


def save_checkpoint(
    path: str | os.PathLike[str], model: SiameseChangeNet, metadata: ModelMetadata, half: bool = False, overwrite: bool = True
) -> Path:
    """Write ``model`` and ``metadata`` atomically; ``half`` stores floating weights (not the normalisation) as float16."""
    import torch
    from safetensors.torch import save_file

    if model.config != metadata.config:
        raise ValueError(f"model config {model.config} differs from metadata config {metadata.config}")
    if not all(torch.equal(getattr(model, name).cpu(), _band_tensor(values))
               for name, values in zip(NORMALISATION, (metadata.mean, metadata.std))):
        raise ValueError(f"model normalisation differs from the metadata's mean {metadata.mean} and std {metadata.std}")
    tensors = {
        name: (t.half() if half and t.is_floating_point() and name not in NORMALISATION else t).detach().cpu().contiguous()
        for name, t in model.state_dict().items()
    }
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "geocd": metadata.to_json()}
    with atomic_output(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def model_path(model: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint a model name means: ``None`` or ``"default"`` the bundled model, anything else a path."""
    if model is not None and os.fspath(model) != DEFAULT_MODEL_NAME:
        return Path(model)
    if not DEFAULT_MODEL.is_file():
        raise CheckpointError(None, "no default model is bundled with this geocd install; pass models=FILE")
    return DEFAULT_MODEL


def model_paths(models: Sequence[str | os.PathLike[str]] | None = None) -> list[Path]:
    """The checkpoints of an ensemble (:func:`model_path` of each); none given means the bundled model."""
    return [model_path(m) for m in models] if models else [model_path()]


def read_metadata(path: str | os.PathLike[str] | None = None) -> ModelMetadata:
    """Read only the metadata of a checkpoint (fast: the weights are not loaded); ``None`` or ``"default"``:
    the bundled model's."""
    path = model_path(path)
    header = _read_header(path)
    try:
        return ModelMetadata.from_json(header["geocd"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(path, f"geocd metadata is malformed ({type(error).__name__}: {error})") from None


def load_checkpoint(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """The checkpoint's metadata, and its network (``None`` or ``"default"``: the bundled model) in eval mode
    with float32 weights on ``device``, built on first use (weights that do not fit the architecture in
    the metadata are a :class:`CheckpointError` then)."""
    path = model_path(path)
    metadata = read_metadata(path)
    return LoadedModel(partial(_network, path, metadata, device), metadata, path)


def _network(path: Path, metadata: ModelMetadata, device: str | torch.device) -> SiameseChangeNet:
    """The network of checkpoint ``path`` with its weights."""
    from geocd.models.siamese import SiameseChangeNet

    try:
        model = SiameseChangeNet(metadata.config, metadata.mean, metadata.std)
    except RuntimeError as error:
        raise CheckpointError(path, f"cannot build backbone {metadata.config.backbone!r}: {error}") from None
    expected = model.state_dict()
    with safe_open(str(path), framework="pt") as f:
        stored = {name: f.get_tensor(name) for name in f.keys()}
    if not stored.keys() & set(NORMALISATION):
        stored.update((name, expected[name]) for name in NORMALISATION)
    missing = expected.keys() - stored.keys()
    unexpected = stored.keys() - expected.keys()
    reshaped = [n for n in expected.keys() & stored.keys() if expected[n].shape != stored[n].shape]
    if missing or unexpected or reshaped:
        raise CheckpointError(
            path,
            f"weights do not match the architecture in its metadata ({metadata.config.backbone}): "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape",
        )
    model.load_state_dict({n: t.to(expected[n].dtype) for n, t in stored.items()})
    return model.to(device).eval()


def load_models(
    models: Sequence[LoadedModel | str | os.PathLike[str]] | None = None, device: str | torch.device = "cpu"
) -> list[LoadedModel]:
    """An ensemble: loaded models as they are, each checkpoint path (or ``"default"``) loaded on ``device``;
    none given means the default model bundled with geocd."""
    return [m if isinstance(m, LoadedModel) else load_checkpoint(m, device) for m in models or [None]]


def model_card(model: str | os.PathLike[str] | None = None) -> list[str]:
    """Lines describing a checkpoint (none or ``"default"``: the bundled model) from its metadata: where it lives,
    name, backbone, input, classes, training data, validation scores and limits, as far as it records them."""
    path = model_path(model)
    meta = read_metadata(path)
    card, info = meta.info.get("model_card", {}), meta.info
    default = " (the bundled default model: --model default)" if path == DEFAULT_MODEL else ""
    trained = ", ".join(meta.schema.classes[c].name for c in meta.trained_classes) or "none (change only)"
    resolution = f", trained at {meta.resolution_m:g} m" if meta.resolution_m else ""
    lines = [f"{path.resolve()}{default}, {path.stat().st_size / 1e6:.1f} MB",
             f"name: {card.get('name', path.stem)}",
             f"backbone: {meta.config.backbone}{' (lightweight heads)' if meta.config.lightweight else ''}, "
             f"tile {meta.tile_size} px{resolution}, geocd {meta.geocd_version}",
             f"input: {card.get('input', ', '.join(meta.bands) + ' (' + meta.radiometry + ')')}",
             f"land-cover classes trained: {trained}"]
    if "training_data" in card:
        lines += ["training data:"] + [f"  {d['dataset']}, {d.get('resolution_m', '?')} m: {d.get('source', '')} "
                                       f"({d.get('licence', 'licence unknown')})" for d in card["training_data"]]
    elif "archives" in info:
        lines.append(f"training data: {len(info.get('train_pairs', []))} pairs of {', '.join(info['archives'])}")
    scores = [f"{v['dataset']} {v['f1']:.3f}" for v in card.get("validation", []) if "f1" in v]
    if scores:
        lines.append(f"validation F1: {', '.join(scores)}")
    elif info.get("validation"):
        lines.append("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in info["validation"].items()))
    lines += [f"limit: {limit}" for limit in card.get("limits", [])]
    return lines


def check_ensemble(models: Sequence[LoadedModel]) -> None:
    """Members of an ensemble must agree on bands, classes and trained classes."""
    first = models[0].metadata
    for other in models[1:]:
        meta = other.metadata
        for what, a, b in (
            ("input bands", first.config.in_channels, meta.config.in_channels),
            ("input radiometry", first.radiometry, meta.radiometry),
            ("class schema", first.schema, meta.schema),
            ("trained land-cover classes", first.trained_classes, meta.trained_classes),
        ):
            if a != b:
                raise InputError(other.path, f"{what} differ from those of {models[0].path}; cannot ensemble them")


def _band_tensor(values: Sequence[float]) -> torch.Tensor:
    """Per-band values as the network holds them: float32 ``[1,C,1,1]``."""
    import torch

    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


def _read_header(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise CheckpointError(path, "model file does not exist")
    try:
        with safe_open(str(path), framework="numpy") as f:  # the header only: no framework is imported
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(path, f"not a geocd checkpoint (not a readable safetensors file: {error})") from None
    if header.get("format") != FORMAT_NAME or "geocd" not in header:
        raise CheckpointError(path, "not a geocd checkpoint (a safetensors file without geocd metadata)")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            path, f"checkpoint format version {header.get('format_version')} is not supported by geocd {__version__}"
        )
    return header
