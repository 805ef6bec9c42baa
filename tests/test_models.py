"""The Siamese network, its heads and test-time augmentation."""

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from geocd.models import ChangeLogits, ModelConfig, SiameseChangeNet, predict_probabilities
from geocd.models.heads import FCNHead, PSPHead
from geocd.models.dihedral import DIHEDRAL, GROUP, transform_each
from geocd.models.tta import predict_logits


@pytest.mark.parametrize(
    ("backbone", "bands", "lightweight"),
    [
        ("hrnet_w18_small_v2", 3, False),
        ("hrnet_w18_small_v2", 4, True),
        ("resnet18", 5, False),
        ("tf_efficientnet_lite0", 3, True),
        ("efficientnet_b0", 1, False),
    ],
)
def test_outputs_have_input_resolution(backbone: str, bands: int, lightweight: bool) -> None:
    model = SiameseChangeNet(ModelConfig(backbone, bands, num_classes=6, lightweight=lightweight)).eval()
    before, after = torch.randn(2, bands, 64, 96), torch.randn(2, bands, 64, 96)
    with torch.no_grad():
        out = model(before, after)
    assert out.sem_before.shape == out.sem_after.shape == (2, 6, 64, 96)
    assert out.change.shape == (2, 1, 64, 96)


def test_hrnet_fuses_raw_branches_of_stride_4_and_coarser() -> None:
    model = SiameseChangeNet(ModelConfig("hrnet_w18_small_v2"))
    assert model.levels == [1, 2, 3, 4]
    assert model.semantic_head.block[0].in_channels == 18 + 36 + 72 + 144


def test_lightweight_heads_use_depthwise_convolutions() -> None:
    heavy, light = FCNHead(64, 6), FCNHead(64, 6, lightweight=True)
    assert any(m.groups == 64 for m in light.modules() if isinstance(m, nn.Conv2d))
    assert not any(m.groups > 1 for m in heavy.modules() if isinstance(m, nn.Conv2d))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(light) < count(heavy) / 4
    assert count(PSPHead(64, 1, lightweight=True)) < count(PSPHead(64, 1))


def test_both_dates_share_the_semantic_head() -> None:
    model = SiameseChangeNet(ModelConfig("resnet18")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        same = model(x, x)
    assert torch.allclose(same.sem_before, same.sem_after)


class PointwiseModel(nn.Module):
    """A 1x1-convolution model: equivariant to every dihedral transform."""

    def __init__(self, bands: int = 3, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.semantic = nn.Conv2d(bands, classes, 1)
        self.change = nn.Conv2d(bands, 1, 1)

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> ChangeLogits:
        return ChangeLogits(self.semantic(before), self.semantic(after), self.change(before - after))


def runner(model: nn.Module) -> Callable[[np.ndarray, np.ndarray], ChangeLogits]:
    """``model`` called like an inference runner: numpy batches in, float32 arrays out."""

    @torch.no_grad()
    def run(before: np.ndarray, after: np.ndarray) -> ChangeLogits:
        out = model(*(torch.from_numpy(np.ascontiguousarray(x)) for x in (before, after)))
        return ChangeLogits(*(o.numpy() for o in out))

    return run


def randn(*shape: int) -> np.ndarray:
    """Standard normal float32 values of ``shape``."""
    return np.random.default_rng(0).standard_normal(shape, np.float32)


class LeftColumnModel(PointwiseModel):
    """Not equivariant: the change logit is large only in the leftmost column."""

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> ChangeLogits:
        out = super().forward(before, after)
        change = torch.full_like(out.change, -5.0)
        change[..., 0] = 5.0
        return ChangeLogits(out.sem_before, out.sem_after, change)


@pytest.mark.parametrize("name", list(DIHEDRAL))
def test_dihedral_inverse_undoes_forward_on_non_square_input(name: str) -> None:
    forward, inverse = DIHEDRAL[name]
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    assert torch.equal(inverse(forward(x)), x)


def test_six_distinct_dihedral_transforms() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    images = {tuple(forward(x).flatten().tolist()) for forward, _ in DIHEDRAL.values()}
    assert len(DIHEDRAL) == 6 and len(images) == 6


def test_tta_of_equivariant_model_equals_plain_prediction() -> None:
    model = runner(PointwiseModel())
    before, after = randn(2, 3, 8, 12), randn(2, 3, 8, 12)
    plain = predict_probabilities([model], before, after, tta=False)
    augmented = predict_probabilities([model], before, after, tta=True)
    for p, a in zip(plain, augmented):
        np.testing.assert_allclose(p, a, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(plain.sem_before.sum(1), np.ones((2, 8, 12)), rtol=1e-6)


def test_tta_averages_over_the_six_transforms_mapped_back() -> None:
    before = after = np.zeros((1, 3, 6, 6), np.float32)
    probs = predict_probabilities([runner(LeftColumnModel())], before, after, tta=True).change[0, 0]
    high, low = 1 / (1 + np.exp(-5.0)), 1 / (1 + np.exp(5.0))
    expected = np.zeros((6, 6))
    for forward, inverse in DIHEDRAL.values():
        column = np.full((1, 1, 6, 6), low)
        column[..., 0] = high
        expected += inverse(column)[0, 0]
    np.testing.assert_allclose(probs, expected / 6, rtol=1e-6)
    # the border pixels are hit by some transforms' left column, the interior by none
    assert probs[0, 0] > probs[0, 3] > probs[2, 2]
    np.testing.assert_allclose(probs[2, 2], low, rtol=1e-5)


class SmallInputModel(PointwiseModel):
    """Not scale-invariant: the change logit is +5 on inputs narrower than 8 pixels, -5 otherwise."""

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> ChangeLogits:
        out = super().forward(before, after)
        return ChangeLogits(out.sem_before, out.sem_after, torch.full_like(out.change, 5.0 if before.shape[-1] < 8 else -5.0))


def test_scales_average_the_resized_runs_mapped_back_to_the_input_size() -> None:
    before, after = randn(2, 3, 8, 12), randn(2, 3, 8, 12)
    probs = predict_probabilities([runner(SmallInputModel())], before, after, scales=(1.0, 0.5))
    assert probs.change.shape == (2, 1, 8, 12) and probs.sem_after.shape == (2, 4, 8, 12)
    np.testing.assert_allclose(probs.change, np.full((2, 1, 8, 12), 0.5))  # sigmoid(-5) and sigmoid(5), averaged
    flat = np.full((1, 3, 8, 12), 7.0, np.float32)  # a constant image resizes exactly: every scale sees the same pixels
    plain = predict_probabilities([runner(PointwiseModel())], flat, flat * 0.5)
    scaled = predict_probabilities([runner(PointwiseModel())], flat, flat * 0.5, scales=(1.0, 0.5, 2.0))
    for p, s in zip(plain, scaled):
        np.testing.assert_allclose(p, s, rtol=1e-6)


def test_ensemble_averages_member_probabilities() -> None:
    a, b = runner(PointwiseModel(seed=1)), runner(PointwiseModel(seed=2))
    before, after = randn(1, 3, 5, 5), randn(1, 3, 5, 5)
    pa, pb = (predict_probabilities([m], before, after) for m in (a, b))
    both = predict_probabilities([a, b], before, after)
    np.testing.assert_allclose(both.change, (pa.change + pb.change) / 2, rtol=1e-6)
    np.testing.assert_allclose(both.sem_after, (pa.sem_after + pb.sem_after) / 2, rtol=1e-6)


@pytest.mark.parametrize("tta, scales", [(False, (1.0,)), (True, (1.0, 0.5))])
def test_stacked_probabilities_pick_the_classes_of_both_dates_after_the_change(tta: bool, scales: tuple[float, ...]) -> None:
    """What the stitcher gets: the change, then the picked classes of each date, in the order asked, each the
    same average (over members, transforms and scales) as the separate probabilities."""
    members = [runner(PointwiseModel(seed=1)), runner(SmallInputModel(seed=2))]
    before, after = randn(2, 3, 8, 12), randn(2, 3, 8, 12)
    heads = [3, 0, 2]
    stacked = predict_logits(members, before, after, tta, scales).stacked(heads)
    separate = predict_probabilities(members, before, after, tta, scales)
    assert stacked.shape == (2, 7, 8, 12) and stacked.dtype == np.float32
    expected = np.concatenate([separate.change, separate.sem_before[:, heads], separate.sem_after[:, heads]], axis=1)
    np.testing.assert_allclose(stacked, expected, rtol=1e-6, atol=1e-7)
    assert predict_logits(members, before, after).stacked([]).shape == (2, 1, 8, 12)


def test_probabilities_are_softmax_and_sigmoid_without_overflow() -> None:
    """Softmax and sigmoid in numpy equal PyTorch's, with no warning even for logits of any size."""
    import warnings

    logits = randn(2, 5, 4, 4) * 40

    def fixed(before: np.ndarray, after: np.ndarray) -> ChangeLogits:
        return ChangeLogits(logits, -logits, logits[:, :1] * 100)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probs = predict_probabilities([fixed], np.zeros((2, 3, 4, 4), np.float32), np.zeros((2, 3, 4, 4), np.float32))
    assert all(p.dtype == np.float32 for p in probs)
    np.testing.assert_allclose(probs.sem_after, torch.from_numpy(-logits).softmax(1).numpy(), atol=1e-6)
    np.testing.assert_allclose(probs.change, torch.from_numpy(logits[:, :1] * 100).sigmoid().numpy(), atol=1e-6)


def test_dihedral_transforms_treat_numpy_arrays_and_tensors_alike() -> None:
    x = randn(2, 3, 4, 6)
    for element in GROUP:
        np.testing.assert_array_equal(element.forward(x), element.forward(torch.from_numpy(x)).numpy())
        np.testing.assert_array_equal(element.inverse(element.forward(x)), x)


def test_group_has_eight_distinct_invertible_elements_turns_then_flip() -> None:
    x = torch.arange(2 * 16.0).reshape(2, 1, 4, 4)
    images = {tuple(element.forward(x).flatten().tolist()) for element in GROUP}
    assert len(GROUP) == 8 and len(images) == 8
    for element in GROUP:
        assert torch.equal(element.inverse(element.forward(x)), x)
    assert torch.equal(transform_each(x, [1, 7]), torch.stack([x[0].rot90(1, (-2, -1)), x[1].rot90(3, (-2, -1)).flip(-1)]))
