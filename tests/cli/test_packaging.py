"""The distribution is named apart from PyPI's unrelated `agentim`; the command stays `agentim`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_distribution_name_and_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "agentim-hub"
    assert project["scripts"] == {"agentim": "agentim.cli:main"}
    assert "`agentim-hub`" in (ROOT / "README.md").read_text()


def test_the_image_installs_the_wheel_of_that_name() -> None:
    wheel = re.sub(r"[-_.]+", "_", "agentim-hub")  # the wheel file name's normalization
    assert f"/dist/{wheel}-*.whl" in (ROOT / "Containerfile").read_text()
