"""Fixtures of the bindings tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clihelp import REPO, cli_path


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `microseg` binary."""
    return cli_path()


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs from the repository root (paths in messages match the CLI's)."""
    monkeypatch.chdir(REPO)
