"""Fine-tune a geocd model in a short GPU window: a fixed wall-clock budget, all pair synthesis on the GPU.

The training data is a bundle (:mod:`geocd.training.bundle`) held on the device as uint8 tensors.
Each batch is drawn there (:class:`DevicePairs`), in shares of

* *real* pairs: a random crop of a change pair;
* *invariance* pairs: one date of any entry as both dates, labelled unchanged (a land-cover map
  keeps its land cover in both dates);
* *unpaired* pairs: crops of two land-cover maps as the two dates, changed where their classes differ,
  as in STAR (ChangeStar, Zheng et al., ICCV 2021; the rule of :mod:`geocd.training.synthetic`);

entries drawn by :func:`sampling_weights`, each crop resampled by a random scale factor (0.5-2x,
log-uniform); then the 'after' date of every invariance pair, and of the others with
:attr:`WindowOptions.jitter_probability`, is passed through
:func:`nuisance` (another acquisition of the same ground, the torch counterpart of
:func:`geocd.training.invariance.nuisance`, whose strengths and probabilities it shares; JPEG
artefacts are left out, the bundle's images are JPEG already), a random dihedral transform is
applied to both dates and the labels, and half the pairs swap their dates.

:func:`train_window` starts from a geocd checkpoint (default: the bundled default model) and trains
with the loss of :mod:`geocd.training.losses`: AdamW (encoder at :attr:`WindowOptions.encoder_lr_factor`
of the heads' rate), linear warm-up then cosine decay over the time budget, an exponential moving
average (EMA) of the weights, and on CUDA bf16 autocast and channels-last tensors. It writes the EMA
weights as float16 geocd checkpoints at the given minutes and at the end, and stops early enough to
write the last one within the budget.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from geocd.checkpoint import DEFAULT_MODEL, load_checkpoint, save_checkpoint
from geocd.data.labels import IGNORE
from geocd.models.dihedral import transform_each
from geocd.training.bundle import BundleEntry, read_bundle
from geocd.training.invariance import MAX_ROTATION_DEGREES, MAX_SCALE_CHANGE, MAX_SHIFT_PIXELS, PROBABILITIES
from geocd.training.losses import ChangeLoss
from geocd.training.synthetic import unpaired_labels

MAX_CHECKPOINT_BYTES = 16 * 2**20
KINDS = ("real", "invariance", "unpaired")


@dataclass(frozen=True)
class WindowOptions:
    """How :func:`train_window` trains; ``batch_size`` None: 128 on CUDA, 4 on the CPU."""

    minutes: float = 8.0
    checkpoint_minutes: tuple[float, ...] = (3.0,)
    batch_size: int | None = None
    tile_size: int = 256
    lr: float = 1e-3
    encoder_lr_factor: float = 0.5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    ema_decay: float = 0.995
    shares: tuple[float, float, float] = (0.4, 0.3, 0.3)
    """Shares of :data:`KINDS` in a batch."""
    scale_range: tuple[float, float] = (0.5, 2.0)
    jitter_probability: float = 0.5
    first_log_s: float = 30.0
    log_every_s: float = 60.0
    reserve_s: float = 20.0
    """Seconds of the budget kept for writing the last checkpoint."""
    max_steps: int | None = None
    seed: int = 0
    init_from: Path = DEFAULT_MODEL


@dataclass(frozen=True)
class WindowResult:
    """The checkpoints written (by minute, ``last`` the end) and the run's numbers."""

    checkpoints: dict[str, Path]
    steps: int
    pairs: int
    seconds: float
    pairs_per_second: float


class DevicePairs:
    """The entries of a bundle on ``device``, and random training batches drawn from them there."""

    def __init__(self, entries: list[BundleEntry], device: torch.device, options: WindowOptions) -> None:
        self.device, self.options = device, options
        self.rng = np.random.default_rng(options.seed)
        self.generator = torch.Generator(device).manual_seed(options.seed)
        pairs = [e for e in entries if e.is_pair]
        landcover = [e for e in entries if not e.is_pair]
        self.pools = {name: ([_entry_tensors(e, device) for e in pool], sampling_weights(pool)) for name, pool in
                      (("pairs", pairs), ("landcover", landcover), ("everything", pairs + landcover))}
        shares = np.array(options.shares, float) * [bool(pairs), True, bool(landcover)]
        self.shares = shares / shares.sum()

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        """``size`` training pairs: ``image_before``/``image_after`` ``[B,3,T,T]`` float32 (0-255) and
        ``label_before``/``label_after``/``change`` ``[B,T,T]`` int64."""
        kinds = self.rng.choice(len(KINDS), size, p=self.shares)
        samples = [getattr(self, f"_{KINDS[k]}")() for k in kinds]
        before, after, labels = (torch.stack(part) for part in zip(*samples))
        jittered = self._to_device((self.rng.random(size) < self.options.jitter_probability)
                                   | (kinds == KINDS.index("invariance")))
        after = torch.where(jittered.view(-1, 1, 1, 1), nuisance(after, self.generator), after)
        elements = self.rng.integers(0, 8, size).tolist()
        before, after, labels = (transform_each(x, elements) for x in (before, after, labels))
        swap = self._to_device(self.rng.random(size) < 0.5)
        images_swap, labels_swap = swap.view(-1, 1, 1, 1), swap.view(-1, 1, 1)
        before, after = torch.where(images_swap, after, before), torch.where(images_swap, before, after)
        label_before = torch.where(labels_swap, labels[:, 1], labels[:, 0])
        label_after = torch.where(labels_swap, labels[:, 0], labels[:, 1])
        return {"image_before": before, "image_after": after, "label_before": label_before.long(),
                "label_after": label_after.long(), "change": labels[:, 2].long()}

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """``array`` on the device, through pinned memory on CUDA (a copy that does not wait for the device)."""
        tensor = torch.from_numpy(array)
        return tensor.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else tensor

    def _pick(self, pool: str) -> tuple[torch.Tensor, torch.Tensor]:
        """An entry of ``pool`` drawn by :func:`sampling_weights`, cropped at a random scale."""
        entries, weights = self.pools[pool]
        images, labels = entries[self.rng.choice(len(entries), p=weights)]
        low, high = np.log(self.options.scale_range)
        return _crop(images, labels, self.options.tile_size, float(np.exp(self.rng.uniform(low, high))), self.rng)

    def _real(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels = self._pick("pairs")
        ignore = torch.full_like(labels, IGNORE)
        return images[:3], images[3:], torch.cat([ignore, ignore, labels])

    def _invariance(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels = self._pick("everything")
        date = images[:3] if images.shape[0] == 3 or self.rng.random() < 0.5 else images[3:]
        landcover = labels if images.shape[0] == 3 else torch.full_like(labels, IGNORE)
        return date, date.clone(), torch.cat([landcover, landcover, torch.zeros_like(labels)])

    def _unpaired(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        (before, label_before), (after, label_after) = self._pick("landcover"), self._pick("landcover")
        return before, after, unpaired_labels(label_before[0], label_after[0])


def nuisance(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``images`` ``[B, C, H, W]`` (0-255) as other acquisitions of the same ground: each of
    :data:`geocd.training.invariance.PROBABILITIES` (JPEG aside) drawn per image with its probability."""
    n, c, height, width = images.shape
    device = images.device

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand((n, *shape), device=device, generator=generator)

    def drawn(name: str) -> torch.Tensor:
        return torch.rand(n, 1, 1, 1, device=device, generator=generator) < PROBABILITIES[name]

    def field() -> torch.Tensor:
        coarse = F.interpolate(uniform(0, 1, 1, 5, 5), size=(height, width), mode="bicubic", align_corners=False)
        low, high = coarse.amin((2, 3), keepdim=True), coarse.amax((2, 3), keepdim=True)
        return (coarse - low) / (high - low).clamp(min=1e-6)

    geometry = drawn("geometry").view(n)
    angle = torch.deg2rad(uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES)) * geometry
    scale = 1 + uniform(-MAX_SCALE_CHANGE, MAX_SCALE_CHANGE) * geometry
    pixels = uniform(-MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS, 2) * geometry[:, None]
    shift = torch.stack([pixels[:, 0] * 2 / width, pixels[:, 1] * 2 / height], 1)  # affine_grid's units: half the tile
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    eye = torch.eye(c, device=device)
    mixing = eye + uniform(-0.06, 0.06, c, c) * (1 - eye)
    mixed = torch.einsum("nij,njhw->nihw", mixing / mixing.sum(2, keepdim=True), out)
    shifted = mixed * uniform(0.8, 1.2, 1, 1, 1) * uniform(0.9, 1.1, c, 1, 1) + uniform(-12, 12, c, 1, 1)
    mean = shifted.mean((2, 3), keepdim=True)
    out = torch.where(drawn("colour"), mean + (shifted - mean) * uniform(0.8, 1.25, 1, 1, 1), out)
    out = torch.where(drawn("gamma"), 255 * (out.clamp(0, 255) / 255) ** uniform(0.75, 1.35, 1, 1, 1), out)
    depth = uniform(0.05, 0.35, 1, 1, 1) * (0.5 + 0.5 * field())
    airlight = uniform(170, 230, 1, 1, 1) + uniform(-10, 10, c, 1, 1)
    out = torch.where(drawn("haze"), out * (1 - depth) + airlight * depth, out)
    out = torch.where(drawn("illumination"), out * (1 - uniform(0.1, 0.4, 1, 1, 1) * field()), out)
    blurred = F.avg_pool2d(out, 3, stride=1, padding=1, count_include_pad=False)
    out = torch.where(drawn("blur"), out + (blurred - out) * uniform(0.3, 1.0, 1, 1, 1), out)
    noise = torch.randn(out.shape, device=device, generator=generator) * uniform(1, 4, 1, 1, 1)
    return torch.where(drawn("noise"), out + noise, out).clamp(0, 255)


def learning_rate_factor(progress: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` of training, then cosine decay to 0 at ``progress`` 1."""
    if progress < warmup:
        return progress / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup))))


def train_window(bundle: str | os.PathLike[str], output: str | os.PathLike[str], options: WindowOptions = WindowOptions(),
                 echo: Callable[[str], None] = print) -> WindowResult:
    """Train from ``options.init_from`` on ``bundle`` within ``options.minutes`` of wall-clock time (counted
    from this call) and write float16 EMA checkpoints into ``output``: ``minute-M.safetensors`` at each
    of ``options.checkpoint_minutes`` reached, ``last.safetensors`` at the end, and ``summary.json``."""
    start = time.monotonic()
    budget = options.minutes * 60 - options.reserve_s
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    torch.manual_seed(options.seed)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    entries = read_bundle(bundle)
    data = DevicePairs(entries, device, options)
    loaded = load_checkpoint(options.init_from, device)
    model = loaded.model.train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(options.ema_decay), use_buffers=True)
    loss = ChangeLoss().to(device)
    encoder = list(model.encoder.parameters())
    heads = [p for name, p in model.named_parameters() if not name.startswith("encoder.")]
    optimizer = torch.optim.AdamW([{"params": encoder, "lr": options.lr * options.encoder_lr_factor},
                                   {"params": heads, "lr": options.lr}], weight_decay=options.weight_decay)
    base_rates = [group["lr"] for group in optimizer.param_groups]
    batch_size = options.batch_size or (128 if cuda else 4)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    info = {"backbone_init": f"checkpoint {options.init_from}", "gpu_window": {
        **{k: (os.fspath(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "batch_size": batch_size, "bundle": os.fspath(bundle), "entries": len(entries), "device": _device_name(device)}}
    metadata = replace(loaded.metadata, tile_size=options.tile_size, info=info)
    pending = sorted(options.checkpoint_minutes)
    checkpoints: dict[str, Path] = {}
    steps = 0
    train_start = time.monotonic() - start
    next_log = options.first_log_s
    echo(f"{len(entries)} bundle entries on {_device_name(device)}, batch {batch_size}, tile {options.tile_size}, "
         f"ready after {train_start:.1f} s")

    def save(name: str) -> None:
        meta = replace(metadata, info={**info, "gpu_window": {**info["gpu_window"], "steps": steps,
                                                              "pairs_seen": steps * batch_size}})
        path = save_checkpoint(out / f"{name}.safetensors", ema.module, meta, half=True)
        if path.stat().st_size > MAX_CHECKPOINT_BYTES:
            raise ValueError(f"{path} is {path.stat().st_size / 2**20:.1f} MiB, over {MAX_CHECKPOINT_BYTES / 2**20:.0f} MiB")
        checkpoints[name] = path
        echo(f"{time.monotonic() - start:.0f} s: wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")

    while options.max_steps is None or steps < options.max_steps:
        now = time.monotonic() - start
        step_seconds = (now - train_start) / steps if steps else 0.0
        if now + step_seconds > budget:
            break
        factor = learning_rate_factor((now - train_start) / max(budget - train_start, 1e-9), options.warmup_fraction)
        for group, rate in zip(optimizer.param_groups, base_rates):
            group["lr"] = rate * factor
        batch = data.batch(batch_size)
        before, after = (batch[k].contiguous(memory_format=torch.channels_last) for k in ("image_before", "image_after"))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            terms = loss(model(before, after), batch["label_before"], batch["label_after"], batch["change"])
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()
        ema.update_parameters(model)
        steps += 1
        now = time.monotonic() - start
        if now >= next_log:
            value = float(terms.total.detach())  # waits for the device, so the rate counts finished steps
            now = time.monotonic() - start
            echo(f"{now:.0f} s: step {steps}, {steps * batch_size / (now - train_start):.1f} pairs/s, "
                 f"loss {value:.4f}, lr factor {factor:.3f}")
            next_log = now + options.log_every_s
        while pending and now >= pending[0] * 60:
            save(f"minute-{pending.pop(0):g}")
    if cuda:
        torch.cuda.synchronize()
    seconds = time.monotonic() - start - train_start
    save("last")
    result = WindowResult(checkpoints, steps, steps * batch_size, seconds, steps * batch_size / max(seconds, 1e-9))
    (out / "summary.json").write_text(json.dumps({**asdict(result), "checkpoints": {k: os.fspath(v) for k, v in
                                                                                       checkpoints.items()},
                                                  "device": _device_name(device), "batch_size": batch_size}, indent=1))
    echo(f"{steps} steps, {result.pairs} pairs in {seconds:.0f} s of training: {result.pairs_per_second:.1f} pairs/s")
    return result


def _entry_tensors(entry: BundleEntry, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """An entry as ``(images, labels)`` uint8 tensors: ``[6, H, W]`` and its change ``[1, H, W]`` for a pair,
    ``[3, H, W]`` and its land cover ``[1, H, W]`` for a land-cover map."""
    dates = [entry.before] if entry.after is None else [entry.before, entry.after]
    images = torch.from_numpy(np.concatenate(dates, axis=2).transpose(2, 0, 1).copy())
    labels = torch.from_numpy((entry.landcover if entry.change is None else entry.change)[None].copy())
    return images.to(device), labels.to(device)


def sampling_weights(entries: list[BundleEntry]) -> np.ndarray:
    """How often each entry is drawn: a dataset by the square root of its pixel count (Dubai's 70 MP of
    land cover do not drown LoveDA's 1 MP, nor do 256² chips get drawn as often as whole scenes), an entry
    within its dataset by its pixel count."""
    areas = np.array([e.before.shape[0] * e.before.shape[1] for e in entries], float)
    datasets = [e.dataset for e in entries]
    totals = {d: sum(a for a, other in zip(areas, datasets) if other == d) for d in set(datasets)}
    weights = np.array([a / math.sqrt(totals[d]) for a, d in zip(areas, datasets)])
    return weights / max(weights.sum(), 1e-12)


def _crop(images: torch.Tensor, labels: torch.Tensor, tile: int, scale: float,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random square of about ``tile * scale`` pixels (at most the entry's short side) resampled to
    ``tile``: images bilinear (area-averaged when shrinking) as float32, labels nearest as uint8."""
    height, width = images.shape[-2:]
    side = min(height, width, max(8, round(tile * scale)))
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    window = (slice(None), slice(top, top + side), slice(left, left + side))
    image, label = images[window].float()[None], labels[window][None]
    if side != tile:
        image = F.interpolate(image, size=(tile, tile), mode="bilinear", antialias=side > tile, align_corners=False)
        label = F.interpolate(label.float(), size=(tile, tile), mode="nearest").to(torch.uint8)
    return image[0], label[0]


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
