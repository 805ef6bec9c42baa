"""The README and docs/ cannot drift from the tool: every ``geocd`` command and flag they show exists, every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUICK_START = ('python3 -m pip install ".[openvino]" && geocd demo demo/ && geocd predict demo/before.tif demo/after.tif '
               "-o demo/changes.gpkg")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(geocd\s[^`]*)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FLAG = re.compile(r"^--?[A-Za-z][\w-]*$")
OTHER_TOOLS_FLAGS = {"dask": {"--nthreads", "--nworkers", "--resources", "--scheduler-file"},
                     "benchmarks/*.py": {"--batch", "--cities", "--clean", "--compare", "--data", "--end-to-end", "--modes", "--name",
                                         "--network", "--reuse", "--seconds", "--sizes", "--tile"},
                     "pip": {"--index-url", "--no-deps"}, "qgis_process": {"--noversioncheck"},
                     "scripts/gpu_window.py": {"--minutes"}}
"""Flags the docs name that belong to other programs, not to geocd."""


def invocations(text: str) -> list[str]:
    """Every ``geocd ...`` command line in ``text``'s code blocks and inline code, from ``geocd`` on."""
    lines = [line for block in FENCE.findall(text) for line in block.replace("\\\n", " ").splitlines()]
    lines += INLINE.findall(FENCE.sub("", text))
    found = []
    for line in lines:
        for segment in re.split(r"&&|\|\||[|;]", line):
            match = re.search(r"(?:^|[\s/])geocd\s+(.*)", segment)
            if match:
                found.append("geocd " + match.group(1).strip())
    return found


def options_of(command: click.Command) -> set[str]:
    """The option strings ``command`` accepts, ``--help`` included."""
    names = {"-h", "--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts, param.secondary_opts)
    return names


def unknown_flags(invocation: str) -> list[str]:
    """The problems of one ``geocd ...`` line: an unknown command, or flags the group or command lacks."""
    tokens = [token.strip("[](),;…") for token in invocation.split()[1:]]
    allowed, command, problems = options_of(cli) | {"--version"}, None, []
    for token in tokens:
        if token == "#" and command is None:
            break
        if FLAG.match(token.split("=")[0]):
            if token.split("=")[0] not in allowed:
                problems.append(f"{command or 'geocd'} has no {token.split('=')[0]}")
        elif command is None and token:
            if token.isupper():  # a placeholder such as COMMAND
                break
            if token not in cli.commands:
                return [f"no command {token!r}"]
            command = token
            allowed = options_of(cli.commands[token])
    return problems


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_geocd_command_and_flag_shown_exists(path: Path) -> None:
    problems = [f"{line}: {problem}" for line in invocations(path.read_text()) for problem in unknown_flags(line)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_flag_named_anywhere_is_a_geocd_option(path: Path) -> None:
    """Also flags in prose (``--epoch-length``) that no ``geocd ...`` line carries: each is some command's option."""
    known = set().union(options_of(cli), *map(options_of, cli.commands.values()), *OTHER_TOOLS_FLAGS.values())
    unknown = sorted(set(re.findall(r"(?<![\w-])--[a-z][\w-]*", path.read_text())) - known)
    assert not unknown, f"{path.name} names flags no geocd command has: {unknown}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_a_file(path: Path) -> None:
    targets = [t.split("#")[0] for t in LINK.findall(path.read_text()) if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in targets if not (path.parent / t).exists()]
    assert not missing, f"{path.name} links to missing files: {missing}"


def test_the_checks_see_the_docs_commands() -> None:
    """The extraction finds the quick start's commands and a flag; a typo'd flag and command are caught."""
    readme = (ROOT / "README.md").read_text()
    assert QUICK_START in readme.splitlines()
    found = invocations(readme)
    assert "geocd demo demo/" in found
    assert "geocd predict demo/before.tif demo/after.tif -o demo/changes.gpkg" in found
    assert len(invocations("\n".join(p.read_text() for p in DOCS))) > 40
    assert unknown_flags("geocd predict a.tif b.tif --quiklook q.png") == ["predict has no --quiklook"]
    assert unknown_flags("geocd predcit a.tif b.tif") == ["no command 'predcit'"]
    assert unknown_flags("geocd --verbose COMMAND --anything") == []
    assert unknown_flags("~/venv/bin/geocd qgis-install   # --profile NAME") == []
