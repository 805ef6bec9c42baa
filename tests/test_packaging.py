"""The install lists every package and only what the code imports, optional parts are extras, and CI runs
exactly the README's test command."""

import ast
import configparser
import re
from importlib.metadata import packages_distributions
from pathlib import Path

from geocd.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
USED_THROUGH = {"pyarrow": "geopandas, which writes GeoParquet with it"}
"""Required distributions that geocd's code does not import itself, and what uses them."""


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def distributions(requirements: str) -> set[str]:
    """The distribution names of a ``setup.cfg`` requirement list, lower case, extras and versions dropped."""
    return {re.split(r"[<>=\[;! ]", line.strip())[0].lower() for line in requirements.splitlines() if line.strip()}


def imported_distributions() -> set[str]:
    """The distributions providing the top-level modules that geocd, its CLI and its QGIS plugin import."""
    modules = set()
    for path in (p for folder in ("geocd", "cli", "qgis_plugin") for p in (ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    provided = packages_distributions()
    return {name.lower() for module in modules for name in provided.get(module, [])}


def test_every_required_distribution_is_imported_and_no_optional_one_is_required() -> None:
    required = distributions(setup_cfg()["options"]["install_requires"])
    assert required - imported_distributions() == set(USED_THROUGH)
    optional = {name for modules in EXTRAS.values() for module in modules for name in packages_distributions()[module]}
    assert not required & {name.lower() for name in optional}


def test_each_optional_part_is_its_extra_and_the_test_extra_pulls_them_all() -> None:
    extras = setup_cfg()["options.extras_require"]
    for extra, modules in EXTRAS.items():
        listed = distributions(extras[extra])
        assert {name.lower() for module in modules for name in packages_distributions()[module]} <= listed
    assert f"geocd[{','.join(EXTRAS)}]" in extras["test"].split()


def test_setup_cfg_lists_every_geocd_package() -> None:
    listed = set(setup_cfg()["options"]["packages"].split())
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "geocd").rglob("__init__.py")}
    assert found <= listed
    assert "geocd.cli" in listed and "cli" not in listed


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_command = next(b for b in blocks if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_public_functions_are_exported_lazily() -> None:
    """``import geocd`` loads no torch; ``geocd.predict`` and friends are the library's functions."""
    import subprocess
    import sys

    code = ("import sys, geocd; assert 'torch' not in sys.modules; "
            "from geocd.inference.predict import predict; from geocd.evaluation import evaluate; "
            "assert geocd.predict is predict and geocd.evaluate is evaluate; "
            "assert geocd.vectorize.__module__ == 'geocd.vector.pipeline' and geocd.train.__module__ == 'geocd.training.train'")
    subprocess.run([sys.executable, "-c", code], check=True)
