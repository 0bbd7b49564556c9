"""Fixtures of the Ansible tests: the test lab (root only) and a temporary directory."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import OTHERS, SERVERS, Lab, needs_root


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    """A temporary directory removed afterwards (also on failure)."""
    d = Path(tempfile.mkdtemp(prefix="microseg-ansible-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """The test hosts, torn down on success, failure, Ctrl-C and SIGTERM."""
    needs_root()
    lab = Lab({**SERVERS, **OTHERS})

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        lab.up()
        yield lab
    finally:
        lab.close()
        signal.signal(signal.SIGTERM, previous)
