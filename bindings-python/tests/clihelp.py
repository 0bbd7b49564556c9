"""Helpers of the bindings tests: the repository, the `microseg` binary, running it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, List

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))
MALFORMED = sorted(
    p
    for p in (REPO / "tests" / "malformed").iterdir()
    if p.suffix in {".toml", ".json", ".yaml", ".yml"}
)


def cli_path() -> Path:
    """The `microseg` binary: $MICROSEG_BIN, else the newest of target/{debug,release}."""
    env = os.environ.get("MICROSEG_BIN")
    if env:
        return Path(env)
    found = [REPO / "target" / k / "microseg" for k in ("debug", "release")]
    found = [p for p in found if p.exists()]
    if not found:
        pytest.skip("no microseg binary: run `cargo build -p microseg-cli` (or set MICROSEG_BIN)")
    return max(found, key=lambda p: p.stat().st_mtime)


def run_cli(cli: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs the CLI from the repository root (so relative paths match)."""
    r = subprocess.run(
        [str(cli), *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    if ok and r.returncode != 0:
        raise AssertionError(f"microseg {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def cli_json(cli: Path, *args: str) -> Any:
    return json.loads(run_cli(cli, *args).stdout)


def rel(path: Path) -> str:
    """A path relative to the repository, as the tests pass it to both sides."""
    return str(path.relative_to(REPO))


def is_root() -> bool:
    return os.geteuid() == 0


def cli_subcommands(cli: Path) -> List[str]:
    out = run_cli(cli, "--help").stdout
    names = []
    in_commands = False
    for line in out.splitlines():
        if line.startswith("Commands:"):
            in_commands = True
            continue
        if in_commands:
            if not line.startswith("  "):
                break
            names.append(line.split()[0])
    return names
