"""The layer contracts in pyproject.toml ([tool.importlinter], run by `just lint`) hold, and
they do fail on a wrong-way import: each case writes one into a copy of the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports(tmp_path: Path, wrong: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on a copy of agentim/ with `wrong` (path → source) added to it."""
    shutil.copytree(ROOT / "agentim", tmp_path / "agentim",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for path, source in wrong.items():
        (tmp_path / path).write_text(source)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the copy, before the installed package
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command "
         "as main; sys.argv[0] = 'lint-imports'; main()", "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    result = _lint_imports(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("path", "source", "broken"),
    [
        (  # store reaching up to the HTTP edge
            "agentim/store/zz_wrong.py",
            "from agentim.http import ratelimit\n",
            "agentim.store.zz_wrong -> agentim.http.ratelimit",
        ),
        (  # an action importing a blueprint
            "agentim/actions/zz_wrong.py",
            "import agentim.http.rooms\n",
            "agentim.actions.zz_wrong -> agentim.http.rooms",
        ),
        (  # the pure protocol layer importing the database
            "agentim/protocol/zz_wrong.py",
            "from agentim.store.db import Conn\n",
            "agentim.protocol.zz_wrong -> agentim.store.db",
        ),
        (  # a leaf importing a layer (grimp reads source, so the rest of the file can go)
            "agentim/settings.py",
            "from agentim.store import kv\n",
            "agentim.settings -> agentim.store.kv",
        ),
    ],
)
def test_a_wrong_way_import_breaks_the_contract(
    tmp_path: Path, path: str, source: str, broken: str
) -> None:
    result = _lint_imports(tmp_path, {path: source})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
    assert broken in result.stdout
