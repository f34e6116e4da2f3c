"""The install mapping: every package folder is listed and importing ours does no work."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "application", "adapters", "entrypoints")


def _declared_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared_in_pyproject() -> None:
    on_disk = {
        "ssvae." + ".".join(init.parent.relative_to(ROOT).parts)
        for layer in LAYERS
        for init in (ROOT / layer).rglob("__init__.py")
    }
    assert on_disk == _declared_packages()


def test_layers_import_under_the_ssvae_name() -> None:
    import ssvae.adapters
    import ssvae.domain

    assert Path(ssvae.domain.__file__).parent == ROOT / "domain"
    assert Path(ssvae.adapters.__file__).parent == ROOT / "adapters"


def test_importing_our_packages_loads_no_heavy_framework() -> None:
    code = (
        "import sys\n"
        "import ssvae.domain.spec, ssvae.domain.labels, ssvae.domain.ports\n"
        "import ssvae.application.container, ssvae.application.bootstrap\n"
        "import ssvae.entrypoints.cli.main\n"
        "heavy = [m for m in ('jax', 'flax', 'optax', 'pyarrow', 'panel', 'matplotlib')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == ""


def test_starting_the_cli_loads_no_numpy() -> None:
    """--help and a usage error stay quick: policy, preset, embedder and task names come
    from domain modules that need no numpy."""
    code = "import sys\nimport ssvae.entrypoints.cli.main\nprint('numpy' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "False"
