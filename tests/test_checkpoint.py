"""The geocd checkpoint format: round trip, half storage and clear errors."""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from geocd.checkpoint import ModelMetadata, load_checkpoint, read_metadata, save_checkpoint
from geocd.errors import CheckpointError
from geocd.models import ModelConfig, SiameseChangeNet
from geocd.schema import SECOND, LandCover

CONFIG = ModelConfig("resnet18", in_channels=4, num_classes=6, lightweight=True)


@pytest.fixture(scope="module")
def model() -> SiameseChangeNet:
    torch.manual_seed(0)
    net = SiameseChangeNet(CONFIG, metadata().mean, metadata().std)
    with torch.no_grad():  # make BN statistics non-trivial so they must round-trip too
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.9, 1.1)
    return net.eval()


def metadata() -> ModelMetadata:
    return ModelMetadata(
        CONFIG,
        bands=("red", "green", "blue", "nir"),
        mean=(0.1, 0.2, 0.3, 0.4),
        std=(0.5, 0.5, 0.5, 0.6),
        trained_classes=(LandCover.WATER, LandCover.LOW_VEGETATION, LandCover.BUILDING),
        tile_size=256,
        resolution_m=0.5,
        info={"trained_on": "unit test"},
    )


def test_round_trip_is_bit_identical(model: SiameseChangeNet, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", model, metadata())
    loaded = load_checkpoint(path)
    before, after = torch.randn(1, 4, 64, 64), torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        expected, got = model(before, after), loaded.model(before, after)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)
    assert loaded.metadata == metadata()
    assert loaded.metadata.schema == SECOND and loaded.metadata.landcover_trained
    assert not loaded.model.training


def test_half_storage_halves_the_file_and_loads_as_float32(model: SiameseChangeNet, tmp_path: Path) -> None:
    full = save_checkpoint(tmp_path / "full.safetensors", model, metadata())
    half = save_checkpoint(tmp_path / "half.safetensors", model, metadata(), half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_checkpoint(half).model
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    ref = dict(model.named_parameters())
    for name, param in loaded.named_parameters():
        torch.testing.assert_close(param, ref[name], atol=1e-3, rtol=1e-3)


def test_normalisation_is_stored_as_float32_and_old_checkpoints_take_it_from_metadata(
    model: SiameseChangeNet, tmp_path: Path
) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", model, metadata(), half=True)
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        stored = {name: f.get_tensor(name) for name in f.keys()}
    assert stored["mean"].dtype == stored["std"].dtype == torch.float32
    assert stored["std"].flatten().tolist() == pytest.approx([0.5, 0.5, 0.5, 0.6])
    old = tmp_path / "old.safetensors"  # as saved before the network held its normalisation
    save_file({n: t for n, t in stored.items() if n not in ("mean", "std")}, str(old), metadata=header)
    x = torch.full((1, 4, 32, 32), 0.7)
    with torch.no_grad():
        expected, got = load_checkpoint(path).model(x, x), load_checkpoint(old).model(x, x)
    assert all(torch.equal(e, g) for e, g in zip(expected, got))
    assert torch.equal(load_checkpoint(old).model.mean.flatten(), torch.tensor([0.1, 0.2, 0.3, 0.4]))


def test_a_model_whose_normalisation_is_not_its_metadatas_is_refused(tmp_path: Path) -> None:
    net = SiameseChangeNet(CONFIG)
    with pytest.raises(ValueError, match=r"normalisation differs from the metadata's mean \(0.1, 0.2, 0.3, 0.4\)"):
        save_checkpoint(tmp_path / "m.safetensors", net, metadata())
    assert not (tmp_path / "m.safetensors").exists()


def test_metadata_reads_without_loading_weights(model: SiameseChangeNet, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", model, metadata())
    assert read_metadata(path).tile_size == 256


def test_garbage_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"this is not a model")
    with pytest.raises(CheckpointError, match=r"garbage\.safetensors: not a geocd checkpoint"):
        load_checkpoint(path)


def test_foreign_safetensors_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match=r"foreign\.safetensors: not a geocd checkpoint \(.*without geocd metadata"):
        load_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_metadata_that_does_not_match_the_weights(model: SiameseChangeNet, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", model, metadata())
    with open(path, "rb") as f:
        raw = f.read()
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(raw.replace(b'\\"backbone\\": \\"resnet18\\"', b'\\"backbone\\": \\"resnet34\\"'))
    assert tampered.read_bytes() != raw
    loaded = load_checkpoint(tampered)  # the network is built on first use
    with pytest.raises(CheckpointError, match=r"tampered\.safetensors: weights do not match .*resnet34"):
        loaded.model


def test_malformed_metadata(model: SiameseChangeNet, tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"format": "geocd-checkpoint", "format_version": "1", "geocd": "{}"})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: geocd metadata is malformed"):
        load_checkpoint(path)


def test_error_message_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_metadata_must_describe_every_band() -> None:
    with pytest.raises(ValueError, match="in_channels=4"):
        ModelMetadata(CONFIG)


def test_default_names_the_bundled_model_everywhere(tmp_path: Path) -> None:
    """Issue 26: ``--model default`` was 'default: model file does not exist' and the Python API needed models=."""
    import json

    import rasterio
    from click.testing import CliRunner

    import geocd
    from cli.main import cli
    from conftest import planted_pair, synthetic_archive
    from geocd.checkpoint import DEFAULT_MODEL, load_models, model_path
    from geocd.inference.predict import PredictOptions, PredictOutputs

    assert model_path("default") == model_path(None) == model_path(Path("default")) == DEFAULT_MODEL
    assert read_metadata("default") == read_metadata(DEFAULT_MODEL)
    assert [m.path for m in load_models(None)] == [m.path for m in load_models(["default"])] == [DEFAULT_MODEL]
    with pytest.raises(CheckpointError, match="model file does not exist"):
        read_metadata(tmp_path / "default")  # a path is a path
    before, after, _ = planted_pair(tmp_path)
    result = geocd.predict(before, after, outputs=PredictOutputs(raster=tmp_path / "change.tif"),
                           options=PredictOptions(tile_size=64, backend="torch", device="cpu"))
    with rasterio.open(result.raster) as src:
        assert json.loads(src.tags()["GEOCD_MODELS"]) == [str(DEFAULT_MODEL)]
    archive = synthetic_archive(tmp_path / "archive", pairs=2, semantic=False)
    for command in (["pseudo-label", str(archive), "-o", str(tmp_path / "pseudo")],
                    ["pseudo-label", str(archive), "-o", str(tmp_path / "pseudo2"), "--model", "default"],
                    ["evaluate", str(archive), "-o", str(tmp_path / "evaluation"), "--model", "default"]):
        done = CliRunner().invoke(cli, [*command, "--tile-size", "64", "--device", "cpu"])
        assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())["models"] == [str(DEFAULT_MODEL)]


def test_models_shows_where_the_bundled_model_lives_and_its_card() -> None:
    from click.testing import CliRunner

    from cli.main import cli
    from geocd.checkpoint import DEFAULT_MODEL

    done = CliRunner().invoke(cli, ["models"])
    lines = done.output.splitlines()
    assert done.exit_code == 0 and lines[0].startswith(f"{DEFAULT_MODEL.resolve()} (the bundled default model: --model default), ")
    assert lines[1] == "name: geocd default change model"
    assert lines[2].startswith("backbone: tf_efficientnet_lite0 (lightweight heads), tile 256 px")
    assert "land-cover classes trained: water, ground, low vegetation, tree, building" in lines
    assert any(line.startswith("  LEVIR-CD, 0.5 m: ") for line in lines)
