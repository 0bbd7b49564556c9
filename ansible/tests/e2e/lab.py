"""Throw-away test hosts in network namespaces (the microseg-lab approach, in Python).

One "switch" namespace holds a Linux bridge; every host is a namespace linked to
it by a veth pair (``eth0`` on the host side) with its address as /32 and a host
route to every other lab address, and nothing else: no default route and no link
to the machine's own network, so traffic stays between the test hosts.
Namespace names are ``mse2e<pid>x<random>-<host>``; :meth:`Lab.close` kills every
process left in them and deletes them (also on failure and on SIGTERM, through
the pytest fixture).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
COLLECTIONS = REPO / "ansible"
BIN = Path(sys.executable).parent
NETPROBE = HERE / "netprobe.py"

#: The test hosts: four managed servers (web1 and web2 share role web) and three
#: hosts that only send and receive probes.
SERVERS = {"web1": "10.10.1.10", "web2": "10.10.1.11", "app1": "10.10.1.20", "db1": "10.10.1.30"}
OTHERS = {"admin": "10.10.0.10", "backup": "10.10.2.50", "outside": "203.0.113.10"}
PREFIX = "mse2e"
#: The most a listener lives, whatever happens to the test.
LISTEN_SECONDS = 600


def run(argv: Sequence[str], timeout: float = 30, input: Optional[bytes] = None) -> str:
    """Runs a command (argument vector, no shell); returns stdout; raises with stderr."""
    r = subprocess.run(list(argv), capture_output=True, timeout=timeout, input=input, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.decode().strip()}")
    return r.stdout.decode()


def cleanup_stale() -> None:
    """Deletes namespaces of earlier runs whose process is gone."""
    for line in run(["ip", "netns", "list"]).splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{PREFIX}(\d+)x", name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            kill_namespace_processes(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def kill_namespace_processes(ns: str) -> None:
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Lab:
    """Hosts by name → IPv4 address, each in its own namespace."""

    def __init__(self, hosts: Dict[str, str]) -> None:
        self.hosts = dict(hosts)
        self.tag = f"{PREFIX}{os.getpid()}x{secrets.token_hex(2)}"
        self.switch = f"{self.tag}-sw"
        self.created: List[str] = []
        self.listeners: List[subprocess.Popen[bytes]] = []

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def up(self) -> None:
        cleanup_stale()
        run(["ip", "netns", "add", self.switch])
        self.created.append(self.switch)
        run(["ip", "-n", self.switch, "link", "set", "lo", "up"])
        run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        for i, (host, addr) in enumerate(self.hosts.items()):
            ns = self.ns(host)
            run(["ip", "netns", "add", ns])
            self.created.append(ns)
            port = f"p{i}"
            run(
                [
                    "ip",
                    "-n",
                    self.switch,
                    "link",
                    "add",
                    port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    ns,
                ]
            )
            run(["ip", "-n", self.switch, "link", "set", port, "master", "br0", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "addr", "add", f"{addr}/32", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            for other, oaddr in self.hosts.items():
                if other != host:
                    run(["ip", "-n", ns, "route", "add", f"{oaddr}/32", "dev", "eth0"])

    def exec(self, host: str, argv: Sequence[str], timeout: float = 30) -> str:
        return run(["ip", "netns", "exec", self.ns(host), *argv], timeout=timeout)

    def listen(self, ports: Sequence[int]) -> None:
        """A listener on every port of every host (bounded lifetime)."""
        for host in self.hosts:
            p = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns(host),
                    sys.executable,
                    str(NETPROBE),
                    "listen",
                    str(LISTEN_SECONDS),
                    *map(str, ports),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            self.listeners.append(p)
            assert p.stdout is not None
            line = p.stdout.readline().decode().strip()
            if line != "listening":
                raise RuntimeError(
                    f"listener on {host} failed: {p.stderr.read().decode() if p.stderr else ''}"
                )

    def probe(
        self,
        sources: Sequence[str],
        dests: Sequence[str],
        ports: Sequence[int],
        timeout: float = 0.7,
    ) -> Dict[Tuple[str, str, int], str]:
        """TCP connection attempts from every source to every other destination and port,
        sources in parallel; (src, dst, port) → open / refused / timeout."""

        def one(src: str) -> Dict[Tuple[str, str, int], str]:
            targets = {
                f"{self.hosts[d]}:{p}": (src, d, p) for d in dests if d != src for p in ports
            }
            out = self.exec(
                src, [sys.executable, str(NETPROBE), "probe", str(timeout), *targets], timeout=60
            )
            return {targets[k]: v for k, v in json.loads(out).items()}

        result: Dict[Tuple[str, str, int], str] = {}
        with ThreadPoolExecutor(max_workers=len(sources)) as pool:
            for part in pool.map(one, sources):
                result.update(part)
        return result

    def ruleset(self, host: str) -> str:
        """The host's whole ruleset without counter values."""
        return self.exec(host, ["nft", "-s", "list", "ruleset"])

    def close(self) -> None:
        """Stops the listeners, kills whatever still runs in the namespaces, deletes them."""
        for p in self.listeners:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.listeners.clear()
        for ns in reversed(self.created):
            kill_namespace_processes(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.created.clear()


def ansible_env(tmp: Path) -> Dict[str, str]:
    """Ansible confined to `tmp` (config, home, temp dirs) and to this repository's collection."""
    cfg = tmp / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        "forks = 8\n"
        "host_key_checking = False\n"
        "retry_files_enabled = False\n"
        f"remote_tmp = {tmp}/remote-tmp\n"
        f"local_tmp = {tmp}/local-tmp\n"
        "interpreter_python = auto_silent\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_CONNECTION_PLUGINS=str(HERE / "connection_plugins"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="false",
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    return env


def needs_root() -> None:
    """Skips the test unless it runs as root with ip and nft."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and nftables)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
