"""The install lists every package, and CI runs exactly the README's test command."""

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_cfg_lists_every_geocd_package() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
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
