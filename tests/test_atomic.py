"""Atomic outputs never leave half-written files."""

from pathlib import Path

import pytest

from geocd.atomic import _umask, atomic_output
from geocd.errors import OutputError


def test_success_renames_onto_target(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "out.tif") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".tif" and tmp != tmp_path / "out.tif"
        tmp.write_text("done")
        tmp.chmod(0o600)
    assert (tmp_path / "out.tif").read_text() == "done"
    assert (tmp_path / "out.tif").stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "out.gpkg") as tmp:
            tmp.write_text("half")
            Path(str(tmp) + "-wal").write_text("journal")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    target.write_text("old")
    with pytest.raises(OutputError) as refused:
        with atomic_output(target):
            pass
    assert str(refused.value) == f"{target}: already exists (use overwrite=True to replace it)"  # the parameter, not --overwrite
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        with atomic_output(tmp_path / "nope" / "out.tif"):
            pass
