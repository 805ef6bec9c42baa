"""The Lightning task: the Siamese network, the seed's loss and schedule, and validation scores.

Adam with the backbone at ``lr`` and the heads at ``10 * lr``, poly decay (power 0.9) over
all training steps; frozen parts (:data:`geocd.options.FREEZABLE`) get no gradients and keep
their batch-norm statistics, so they compute exactly what they started with. Training batches
get the same random dihedral transform on both dates and the labels, and optional
brightness/contrast jitter per date (in units of each band's std, about its mean). The network
normalises the raw tiles with the band statistics it was built with.
Validation accumulates the SECOND confusion matrix (both dates) and the binary change
matrix of change pairs, and the land-cover matrix of single-date land-cover images (per-class
IoU, mIoU); the selection metric is Score (0.3 mIoU + 0.7 SeK) when change pairs have
land-cover labels, else the change F1, or the land-cover mIoU without change pairs (and
whatever is left trainable when a head is frozen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torchmetrics import Metric

from geocd.metrics import binary_scores, iou_per_class, semantic_scores
from geocd.models.dihedral import transform_each
from geocd.models.config import ChangeLogits, ModelConfig
from geocd.models.siamese import SiameseChangeNet
from geocd.options import SEED_CLASS_WEIGHTS
from geocd.training.losses import ChangeLoss

HEAD_LR_FACTOR = 10.0
POLY_POWER = 0.9


class ChangeTask(pl.LightningModule):
    """Train :class:`SiameseChangeNet` on pair tiles."""

    def __init__(
        self,
        config: ModelConfig,
        mean: Sequence[float],
        std: Sequence[float],
        lr: float = 1e-3,
        class_weights: Sequence[float] = SEED_CLASS_WEIGHTS,
        jitter: float = 0.1,
        seed: int = 0,
        frozen: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"config": asdict(config), "mean": list(mean), "std": list(std), "lr": lr,
                                   "class_weights": list(class_weights), "jitter": jitter, "seed": seed,
                                   "frozen": list(frozen)})
        self.model = SiameseChangeNet(config, mean, std)
        self.frozen = [self.model.part(name) for name in frozen]
        for part in self.frozen:
            part.requires_grad_(False)
        self.loss = ChangeLoss(class_weights)
        self.val_confusion = SecondConfusion(config.num_classes)
        self.seen_classes = SeenClasses(config.num_classes)
        self.generator = torch.Generator().manual_seed(seed)

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Frozen parts run in evaluation mode, keeping their batch-norm statistics (Lightning sets modes per module)."""
        for part in self.frozen:
            part.eval()

    def augment(self, before: torch.Tensor, after: torch.Tensor, labels: list[torch.Tensor]):  # noqa: ANN201
        """One random dihedral transform per sample for dates and labels; jitter per date.

        Jitter scales each date's deviation from the band means by ``1 + c`` and shifts it by
        ``b`` band stds, ``c`` and ``b`` uniform in ``[-jitter, jitter]`` (raw pixel units in and out).
        """
        rotations = torch.randint(0, 4, (before.shape[0],), generator=self.generator)
        flips = torch.randint(0, 2, (before.shape[0],), generator=self.generator)
        elements = (rotations + 4 * flips).tolist()
        before, after = transform_each(before, elements), transform_each(after, elements)
        labels = [transform_each(label, elements) for label in labels]
        j = self.hparams["jitter"]
        if j > 0:
            shape = (before.shape[0], 1, 1, 1)
            mean, std = self.model.mean, self.model.std
            before, after = (
                x + (x - mean) * (torch.rand(shape, generator=self.generator) * 2 - 1).to(x) * j
                + std * (torch.rand(shape, generator=self.generator) * 2 - 1).to(x) * j
                for x in (before, after)
            )
        return before, after, labels

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        labels = [batch["label_before"], batch["label_after"], batch["change"]]
        before, after, labels = self.augment(batch["image_before"], batch["image_after"], labels)
        terms = self.loss(self.model(before, after), *labels)
        self.seen_classes.update(torch.cat([labels[0], labels[1]]))
        self.log_dict({f"train/{k}": v for k, v in terms._asdict().items()}, prog_bar=False, on_epoch=True, on_step=False,
                      batch_size=before.shape[0], sync_dist=True)
        return terms.total

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_confusion.update(self.model(batch["image_before"], batch["image_after"]), batch)

    def on_validation_epoch_end(self) -> None:
        matrices = {name: m.cpu().numpy() for name, m in self.val_confusion.compute().items()}
        self.val_confusion.reset()
        scores = _validation_scores(**matrices, frozen=self.hparams["frozen"])
        self.log_dict(scores, sync_dist=True)  # already reduced: identical on every rank

    def trained_classes(self) -> tuple[int, ...]:
        """Land-cover ids that appeared in the training labels so far (all ranks)."""
        return tuple(int(i) for i in torch.nonzero(self.seen_classes.compute()).flatten().tolist())

    def configure_optimizers(self) -> dict[str, Any]:
        lr = self.hparams["lr"]
        encoder = [p for p in self.model.encoder.parameters() if p.requires_grad]
        heads = [p for n, p in self.model.named_parameters() if not n.startswith("encoder.") and p.requires_grad]
        groups = [{"params": encoder, "lr": lr}, {"params": heads, "lr": lr * HEAD_LR_FACTOR}]
        optimizer = torch.optim.Adam([g for g in groups if g["params"]])
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total) ** POLY_POWER)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class SecondConfusion(Metric):
    """The validation confusion matrices ``[truth, prediction]`` in pixels, summed over batches and ranks.

    ``semantic``: land cover ``(K+1) x (K+1)`` of change pairs over both dates, a pixel predicted
    unchanged counting as 0; ``binary``: unchanged/changed ``2 x 2`` of change pairs;
    ``landcover``: ``(K+1) x (K+1)`` of single-date land-cover images. Ignored labels and class
    sets are left out.
    """

    full_state_update = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        k = num_classes + 1
        for name, size in (("semantic", k), ("binary", 2), ("landcover", k)):
            self.add_state(name, default=torch.zeros(size, size, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, out: ChangeLogits, batch: dict[str, torch.Tensor]) -> None:
        """Count the pixels of one batch of network outputs against its labels."""
        k = self.semantic.shape[0]
        single = batch["single_date"].view(-1, 1, 1).expand_as(batch["change"])
        changed = out.change[:, 0] > 0
        self.landcover += _histogram(batch["label_before"], out.sem_before.argmax(1) + 1, single, k)
        for logits, labels in ((out.sem_before, batch["label_before"]), (out.sem_after, batch["label_after"])):
            self.semantic += _histogram(labels, torch.where(changed, logits.argmax(1) + 1, 0), ~single, k)
        self.binary += _histogram(batch["change"], changed.long(), ~single, 2)

    def compute(self) -> dict[str, torch.Tensor]:
        """The three matrices by name."""
        return {"semantic": self.semantic, "binary": self.binary, "landcover": self.landcover}


class SeenClasses(Metric):
    """Which land-cover ids ``1..K`` occur in the labels seen so far (on any rank)."""

    full_state_update = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.add_state("counts", default=torch.zeros(num_classes + 1, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, labels: torch.Tensor) -> None:
        """Note the single-class labels of ``labels`` (0, ignore and class sets are not classes)."""
        k = self.counts.shape[0] - 1
        self.counts += torch.bincount(labels[(labels >= 1) & (labels <= k)].flatten(), minlength=k + 1)

    def compute(self) -> torch.Tensor:
        """``[K+1]`` booleans, index = land-cover id (index 0 always False)."""
        return self.counts > 0


def _validation_scores(
    semantic: np.ndarray, binary: np.ndarray, landcover: np.ndarray, frozen: Sequence[str] = ()
) -> dict[str, float]:
    """``val/...`` scores of the matrices of :class:`SecondConfusion`, with ``val/selection``.

    The selection scores what is trained: the land-cover mIoU without change pairs or with the change
    head ``frozen``, the change F1 with the land-cover head frozen or without land-cover labels, else Score.
    """
    scores: dict[str, float] = {f"val/{k}": v for k, v in asdict(binary_scores(binary)).items()}
    if semantic.sum() > 0:
        scores.update({f"val/{k}": v for k, v in asdict(semantic_scores(semantic)).items()})
    if landcover.sum() > 0:
        iou = iou_per_class(landcover)[1:]
        scores["val/landcover_miou"] = float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0
        scores.update({f"val/landcover_iou_{c}": float(v) for c, v in enumerate(iou, start=1) if np.isfinite(v)})
    if landcover.sum() > 0 and (binary.sum() == 0 or "change" in frozen):
        selection = "landcover_miou"
    elif semantic.sum() > 0 and "semantic" not in frozen:
        selection = "score"
    else:
        selection = "f1"
    scores["val/selection"] = scores[f"val/{selection}"]
    return scores


def _histogram(truth: torch.Tensor, pred: torch.Tensor, keep: torch.Tensor, k: int) -> torch.Tensor:
    """``[truth, pred]`` counts over pixels kept, with truth in 0..k-1 (ignore and class sets left out)."""
    keep = keep & (truth >= 0) & (truth < k)
    return torch.bincount(truth[keep] * k + pred[keep], minlength=k * k).view(k, k)
