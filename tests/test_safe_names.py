"""Pair names from someone else's manifest become file names inside the output folder, never paths."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from conftest import files_under, hostile_names, intensity_model, synthetic_archive
from geocd.data.archive import archive_file_stems, open_archive, read_archive, write_manifest
from geocd.errors import InputError, OutputError
from geocd.safe_names import MAX_STEM_BYTES, FileNameClash, file_stem, file_stems, pair_file


@pytest.mark.parametrize("name", ["north", "p0", "levir_train_12", "a.b", "école", "_x", "index"])
def test_a_plain_portable_name_is_kept(name: str) -> None:
    assert file_stem(name) == name


@pytest.mark.parametrize(("name", "readable"), [
    ("../escape", "_escape"), ("/srv/other/escape", "_srv_other_escape"), ("a/b", "a_b"), ("a\\b", "a_b"),
    ("C:evil", "C_evil"), ("tab\there", "tab_here"), ("nul\x00byte", "nul_byte"), ("right\u202eleft", "right_left"),
    ("what?*<>|\"", "what______"), ("trailing. ", "trailing"), ("...", "pair"), ("", "pair"),
    ("CON", "CON_"), ("con.txt", "con_.txt"), ("LPT9.tar.gz", "LPT9_.tar.gz"), ("Com1 ", "Com1_"), ("COM¹", "COM¹_"),
    ("x" * 300, "x" * (MAX_STEM_BYTES - 9)), ("é" * 100, "é" * ((MAX_STEM_BYTES - 9) // 2)),
])
def test_any_other_name_is_rewritten_readably_with_a_hash_of_the_original(name: str, readable: str) -> None:
    stem = file_stem(name)
    assert stem.rsplit("-", 1)[0] == readable and len(stem.rsplit("-", 1)[1]) == 8
    assert len(stem.encode()) <= MAX_STEM_BYTES and file_stem(stem) == stem


def test_names_differing_only_by_case_or_rewritten_alike_get_distinct_stems() -> None:
    assert len({file_stem(name) for name in ("a/b", "a\\b", "a:b", "a?b")}) == 4
    stems = file_stems(["Case", "case", "north", "INDEX"], taken=["index"])
    assert stems[2] == "north" and all(stem.endswith(file_stem(name, hashed=True)[-9:]) for name, stem in
                                         zip(["Case", "case", "INDEX"], [stems[0], stems[1], stems[3]]))
    assert len({stem.casefold() for stem in [*stems, "index"]}) == 5
    assert file_stems(["é", "e\u0301", "É"]) == [file_stem(name, hashed=True) for name in ("é", "e\u0301", "É")]
    assert file_stems(["a/b", "a_b-c14cddc0"]) == ["a_b-c14cddc0", "a_b-c14cddc0-10ed7bd6"]
    with pytest.raises(FileNameClash) as clash:
        file_stems(["a/b", "a_b-c14cddc0", "a_b-c14cddc0-10ed7bd6"])
    assert (clash.value.first, clash.value.second, clash.value.stem) == (1, 2, "a_b-c14cddc0-10ed7bd6")


def test_a_pair_file_never_leads_outside_its_folder(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    assert pair_file(out, "north", ".gpkg") == out / "north.gpkg"
    (out / "linked.gpkg").symlink_to(outside / "victim.gpkg")
    with pytest.raises(OutputError, match="leads outside the output folder"):
        pair_file(out, "linked", ".gpkg")
    (out / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutputError, match="leads outside the output folder"):
        pair_file(out / "sub", "north", ".tif", root=out)
    for stem, suffix in (("../escape", ".gpkg"), ("a/b", ".gpkg"), ("north", "/../x.gpkg")):
        with pytest.raises(OutputError, match="is not a plain file name"):
            pair_file(out, stem, suffix)


@pytest.mark.parametrize(("text", "problem"), [
    ("name,after\np,a.tif\n", "has no 'before' column (columns: after, name)"),
    ("name,before,after\nq,b.tif,a.tif\np,,a.tif\n", "pair 2: no 'before' raster"),
    ("name,before,after\nq,b.tif,a.tif\np,b.tif,a.tif\nq,b.tif,a.tif\n", "pair 3 name 'q' appears more than once"),
])
def test_the_manifest_is_checked_up_front_naming_the_row(tmp_path: Path, text: str, problem: str) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text)
    with pytest.raises(InputError) as error:
        open_archive(manifest, inference=True)
    assert str(error.value) == f"{manifest}: {problem}"


def test_names_that_collide_once_made_safe_are_refused_naming_both_rows(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("name,before,after\na/b,b.tif,a.tif\na_b-c14cddc0,b.tif,a.tif\na_b-c14cddc0-10ed7bd6,b.tif,a.tif\n")
    with pytest.raises(InputError) as error:
        archive_file_stems(open_archive(manifest, inference=True))
    assert str(error.value) == (f"{manifest}: pair 3 name 'a_b-c14cddc0-10ed7bd6' would be written as "
                                "'a_b-c14cddc0-10ed7bd6', as pair 2 ('a_b-c14cddc0') is")


def test_pseudo_label_keeps_hostile_names_inside_its_folder_and_fails_pairs_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = read_archive(synthetic_archive(tmp_path / "archive", pairs=1))[0]
    real, outside = tmp_path / "real_out", tmp_path / "outside"
    (real / "label_before").mkdir(parents=True)
    outside.mkdir()
    (tmp_path / "abs").mkdir()
    victim = outside / "victim.tif"
    victim.write_text("keep")
    (real / "label_before" / "linked.tif").symlink_to(victim)
    output = tmp_path / "out"
    output.symlink_to(real, target_is_directory=True)
    garbled = tmp_path / "archive" / "garbled.tif"
    garbled.write_text("not a raster")
    names = [*hostile_names(tmp_path), "linked", "garbled"]
    records = [replace(record, name=name, before=garbled if name == "garbled" else record.before) for name in names]
    manifest = write_manifest(records, tmp_path / "archive" / "hostile.csv")
    monkeypatch.setattr("geocd.training.pseudo.load_models", lambda paths, device: [intensity_model()])
    existing = files_under(tmp_path)

    result = CliRunner().invoke(cli, ["pseudo-label", str(manifest), "--model", "m.safetensors", "-o", str(output)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 1 + 7 + 2 and "Traceback" not in result.output
    assert lines[-2:] == [
        f"geocd: error: {output / 'label_before' / 'linked.tif'}: leads outside the output folder {real} "
        "(a symbolic link?); remove it or choose another folder",
        f"geocd: error: {garbled}: is not a raster GDAL can read",
    ]
    written = files_under(tmp_path) - existing
    assert written and all(path.is_relative_to(real) for path in written)
    assert victim.read_text() == "keep" and (real / "label_before" / "linked.tif").is_symlink()
    stems = [file_stem(name, hashed=name in ("Case", "case")) for name in names[:7]]
    expected = {real / folder / f"{stem}.tif" for folder in ("label_before", "label_after", "change") for stem in stems}
    assert written == expected | {real / "manifest.csv", real / "pseudo_labels.json"}
    done = read_archive(real / "manifest.csv")
    assert [r.name for r in done] == names[:7]
    assert [r.label_before for r in done] == [(real / "label_before" / f"{stem}.tif").resolve() for stem in stems]
    provenance = json.loads((real / "pseudo_labels.json").read_text())
    assert [p["name"] for p in provenance["pairs"]] == names[:7]
    assert [(f["name"], f["error"]) for f in provenance["failed"]] == [("linked", lines[-2][len("geocd: error: "):]),
                                                                       ("garbled", lines[-1][len("geocd: error: "):])]
