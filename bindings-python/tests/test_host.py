"""microseg.Host on the real kernel, inside a throw-away network namespace (root).

Plan, apply, idempotence, status, rollback, remove, the confirm timer and the
anti-lockout check, compared with `microseg apply/status` where the CLI has them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

import microseg
from clihelp import cli_subcommands
from microseg import _native

POLICY = "examples/three-tier.toml"


def sh(argv: List[str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if ok and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr}")
    return r


@pytest.fixture(autouse=True)
def _no_ssh_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """The namespace is not the machine's SSH session (the anti-lockout test sets its own)."""
    monkeypatch.delenv("SSH_CONNECTION", raising=False)


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace with only loopback and a veth interface holding 10.10.1.10 (a web server)."""
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None:
        pytest.skip("needs root, ip and nft")
    name = f"msbind{os.getpid()}x{secrets.token_hex(2)}"
    sh(["ip", "netns", "add", name])
    try:
        sh(["ip", "-n", name, "link", "set", "lo", "up"])
        sh(["ip", "-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        sh(["ip", "-n", name, "addr", "add", "10.10.1.10/32", "dev", "d0"])
        sh(["ip", "-n", name, "link", "set", "d0", "up"])
        yield name
    finally:
        pids = sh(["ip", "netns", "pids", name], ok=False).stdout.split()
        for pid in pids:  # a confirm timer left behind
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh(["ip", "netns", "del", name], ok=False)


def test_apply_cycle(netns: str, tmp_path: Path, cli: Path) -> None:
    policy = microseg.Policy.from_file(POLICY)
    host = microseg.Host(state_dir=tmp_path / "state", netns=netns)
    boot = tmp_path / "boot" / "microseg.nft"
    assert host.installed_text() is None

    plan = host.plan(policy, role="web")
    assert (plan["plan"], plan["changed"], plan["dry_run"]) == ("replace", True, True)
    assert host.installed_text() is None and not (tmp_path / "state").exists()
    if "apply" in cli_subcommands(cli):
        dry = f"apply {POLICY} --role web --dry-run --state-dir {tmp_path / 'cli-state'}"
        cli_out = sh(["ip", "netns", "exec", netns, str(cli), *dry.split()])
        assert cli_out.stdout == plan["text"]

    r = host.apply(policy, role="web", persist=boot)
    assert (r["plan"], r["changed"], r["applied"]) == ("replace", True, True)
    assert r["persisted"] == str(boot) and boot.read_text() == policy.compile(role="web", optimize=True)
    assert "table inet microseg {" in (host.installed_text() or "")

    again = host.apply(policy, role="web", persist=boot)
    assert (again["plan"], again["changed"]) == ("unchanged", False)
    assert "planned against the record" in again["text"]
    full = host.apply(policy, role="web", persist=boot, refresh=True)
    assert (full["plan"], full["changed"]) == ("unchanged", False)
    assert "planned against the record" not in full["text"]

    status = host.status()
    assert status["installed"] and not status["drifted"] and status["drift"] == []
    assert {"flow:public-web", "flow:admin-ssh", "baseline:default"} <= {
        h["label"] for h in status["hits"]
    }
    if "status" in cli_subcommands(cli):
        r = sh(
            [
                "ip",
                "netns",
                "exec",
                netns,
                str(cli),
                "status",
                "--json",
                "--state-dir",
                str(tmp_path / "state"),
            ]
        )
        want = json.loads(r.stdout)
        assert want["drifted"] is False
        assert want["status"]["installed"] is True
        assert want["status"]["hits"] == status["hits"]

    # Drift: a rule added behind microseg's back.
    sh(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "nft",
            "add",
            "rule",
            "inet",
            "microseg",
            "input",
            "tcp",
            "dport",
            "7777",
            "accept",
        ]
    )
    assert host.status()["drifted"]
    fixed = host.apply(policy, role="web", persist=False)
    assert fixed["changed"] and not host.status()["drifted"]

    # An element-only change is incremental.
    doc = policy.to_dict()
    doc["groups"]["admin"] = ["10.10.0.0/25"]
    wider = microseg.Policy.from_dict(doc)
    inc = host.apply(wider, role="web", persist=False)
    assert inc["plan"] == "incremental", inc["text"]

    back = host.rollback()
    assert back["installed"] is True
    assert host.plan(policy, role="web")["plan"] == "unchanged"

    gone = host.remove(dry_run=True)
    assert gone == {**gone, "was_installed": True, "changed": True, "dry_run": True}
    assert host.installed_text() is not None
    gone = host.remove(persist=False)
    assert gone["was_installed"] and gone["changed"] and host.installed_text() is None
    assert host.remove(persist=False)["changed"] is False


def test_confirm_timeout(netns: str, tmp_path: Path) -> None:
    policy = microseg.Policy.from_file(POLICY)
    host = microseg.Host(state_dir=tmp_path, netns=netns)
    r = host.apply(policy, role="web", confirm_timeout=1, persist=False)
    assert r["pending"] and r["pending"]["timer_running"]
    with pytest.raises(microseg.BackendError) as info:
        host.apply(policy, role="app", persist=False)
    assert info.value.kind == "pending"
    deadline = time.monotonic() + 15
    while host.status()["last_event"] != "timer-rollback" and time.monotonic() < deadline:
        time.sleep(0.2)
    status = host.status()
    assert status["last_event"] == "timer-rollback" and not status["installed"], status["text"]
    assert "rolled-back" in (tmp_path / "timer.log").read_text()

    r = host.apply(policy, role="web", confirm_timeout=30, persist=False)
    assert r["pending"]
    kept = host.confirm()
    assert "confirmed" in kept["text"]
    assert host.status()["pending"] is None and host.status()["installed"]
    with pytest.raises(microseg.BackendError) as info:
        host.confirm()
    assert info.value.kind == "no-pending"


def test_anti_lockout(netns: str, tmp_path: Path) -> None:
    policy = microseg.Policy.from_file(POLICY)
    host = microseg.Host(state_dir=tmp_path, netns=netns)
    outsider = "192.0.2.9 50000 10.10.1.10 22"
    with pytest.raises(microseg.BackendError, match="refusing to apply") as info:
        host.apply(policy, role="web", ssh_connection=outsider, persist=False)
    assert info.value.kind == "locked-out" and host.installed_text() is None
    forced = host.apply(policy, role="web", ssh_connection=outsider, force=True, persist=False)
    assert forced["forced"] and forced["applied"]
    admin = host.apply(
        policy, role="web", ssh_connection="10.10.0.5 50000 10.10.1.10 22", persist=False
    )
    assert admin["lockout"]["outcome"] == "keeps"


def test_apply_lowering(netns: str, tmp_path: Path, cli: Path) -> None:
    """The optimised lowering is the default (optimize=True says the same);
    lowering="plain" is the other."""
    policy = microseg.Policy.from_file(POLICY)
    host = microseg.Host(state_dir=tmp_path / "state", netns=netns)
    assert host.plan(policy, role="web")["text"] == host.plan(policy, role="web", optimize=True)["text"]
    plan = host.plan(policy, role="web", lowering="optimized")
    assert (plan["plan"], plan["changed"]) == ("replace", True)
    if "apply" in cli_subcommands(cli):
        dry = f"apply {POLICY} --role web --optimize --dry-run --state-dir {tmp_path / 'cli'}"
        assert sh(["ip", "netns", "exec", netns, str(cli), *dry.split()]).stdout == plan["text"]
        compiled = sh([str(cli), "compile", POLICY, "--role", "web", "--optimize"]).stdout
        assert policy.compile(role="web", optimize=True) == compiled
    r = host.apply(policy, role="web", persist=False)
    assert r["applied"] and "vmap" in (host.installed_text() or "")
    again = host.apply(policy, role="web", persist=False, optimize=True)
    assert (again["plan"], again["changed"]) == ("unchanged", False)
    status = host.status()
    assert not status["drifted"]
    assert "flow:public-web" in {h["label"] for h in status["hits"]}
    # The plain lowering replaces it.
    assert host.apply(policy, role="web", persist=False, lowering="plain")["plan"] == "replace"
    assert "vmap" not in (host.installed_text() or "")
    with pytest.raises(ValueError, match="lowering and optimize are choices of the nftables"):
        microseg.Host(backend="firewalld").plan(policy, role="web", optimize=True)
    with pytest.raises(ValueError, match="unknown lowering"):
        host.plan(policy, role="web", lowering="fast")
    with pytest.raises(ValueError, match="give one"):
        host.plan(policy, role="web", lowering="plain", optimize=True)


def test_role_auto_and_errors(netns: str, tmp_path: Path) -> None:
    policy = microseg.Policy.from_file(POLICY)
    with pytest.raises(microseg.RequestError, match="role auto reads this process"):
        microseg.Host(state_dir=tmp_path, netns=netns).plan(policy, role="auto")
    # In the namespace itself, auto finds 10.10.1.10 (a web server).
    code = (
        "import microseg, json, sys\n"
        "p = microseg.Policy.from_file(sys.argv[1])\n"
        "h = microseg.Host(state_dir=sys.argv[2])\n"
        "print(json.dumps([h.target(p, role='auto'), h.plan(p, role='auto')['target']]))\n"
    )
    import sys

    r = sh(["ip", "netns", "exec", netns, sys.executable, "-c", code, POLICY, str(tmp_path)])
    assert json.loads(r.stdout) == [{"kind": "host", "value": "10.10.1.10"}, "host 10.10.1.10"]
    with pytest.raises(ValueError, match="netns is for"):
        microseg.Host(backend="firewalld", netns=netns)
    with pytest.raises(ValueError, match="bus_address is for"):
        microseg.Host(bus_address="unix:path=/nonexistent")
    with pytest.raises(ValueError, match="unknown backend"):
        microseg.Host(backend="iptables")  # type: ignore[arg-type]


@pytest.fixture
def firewalld() -> Iterator[Any]:
    """A firewalld on a private bus in a throw-away namespace."""
    if os.geteuid() != 0 or not (shutil.which("firewalld") and shutil.which("dbus-daemon")):
        pytest.skip("needs root, firewalld and dbus-daemon")
    fw = _native._PrivateFirewalld()
    try:
        yield fw
    finally:
        fw.close()


def test_firewalld_host(firewalld: Any, tmp_path: Path, cli: Path) -> None:
    policy = microseg.Policy.from_file(POLICY)
    host = microseg.Host(backend="firewalld", bus_address=firewalld.bus_address, state_dir=tmp_path)
    assert host.installed_text() is None
    plan = host.plan(policy, role="app")
    assert plan["changed"] and plan["dry_run"] and host.installed_text() is None
    if "apply" in cli_subcommands(cli):
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": firewalld.bus_address}
        dry = f"apply {POLICY} --role app --backend firewalld --dry-run --state-dir {tmp_path}/cli"
        out = subprocess.run(
            [str(cli), *dry.split()],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout == plan["text"]
    r = host.apply(policy, role="app")
    assert r["changed"] and r["applied"] and r["backend"] == "firewalld", r["text"]
    installed = json.loads(host.installed_text() or "{}")
    assert installed["table"] == "microseg" and installed["runtime"]["zone"]
    assert host.apply(policy, role="app")["changed"] is False
    status = host.status()
    assert status["installed"] and not status["drifted"], status["text"]
    assert host.rollback()["installed"] is False
    assert host.installed_text() is None
