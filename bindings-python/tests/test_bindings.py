"""The bindings give the CLI's results: compile, query, matrix, check, errors."""

from __future__ import annotations

import ipaddress
import json
import pickle
import random
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest

import microseg
from clihelp import EXAMPLES, MALFORMED, REPO, cli_json, cli_subcommands, rel, run_cli

# -- helpers ---------------------------------------------------------------


def sample_addresses(policy: microseg.Policy) -> List[str]:
    """The ends of every group's entries, plus outside addresses of both families."""
    out: Set[str] = {"203.0.113.77", "2001:db8:ffff:ffff::77"}
    for entries in policy.to_dict().get("groups", {}).values():
        for e in entries:
            if e.startswith("@"):
                continue
            if "-" in e:
                lo, hi = e.split("-")
                out.update({lo, hi})
            elif "/" in e:
                net = ipaddress.ip_network(e)
                out.update({str(net.network_address), str(net.broadcast_address)})
            else:
                out.add(e)
    return sorted(out)


def sample_ports(policy: microseg.Policy) -> List[str]:
    out: Set[str] = {"tcp/9999", "udp/53", "udp/5353", "icmp", "icmpv6"}
    doc = policy.to_dict()
    specs: List[str] = [s for v in doc.get("services", {}).values() for s in v]
    for f in doc.get("flows", []):
        specs += f.get("ports", [])
    for s in specs:
        if "/" not in s:
            continue
        proto, ports = s.split("/")
        for p in ports.split("-"):
            out.add(f"{proto}/{p}")
    return sorted(out)


def connections(policy: microseg.Policy, n: int, seed: int) -> Iterator[Tuple[str, str, str]]:
    """`n` same-family connections, sampled deterministically."""
    addrs = sample_addresses(policy)
    ports = sample_ports(policy)
    triples = [
        (s, d, p)
        for s in addrs
        for d in addrs
        for p in ports
        if ipaddress.ip_address(s).version == ipaddress.ip_address(d).version
        and not (p == "icmp" and ":" in s)
        and not (p == "icmpv6" and ":" not in s)
    ]
    rng = random.Random(seed)
    yield from rng.sample(triples, min(n, len(triples)))


def cli_diagnostics(cli_out: Dict[str, Any]) -> List[Dict[str, Any]]:
    """`check --json` diagnostics in the bindings' shape."""
    out = []
    for d in cli_out["diagnostics"]:
        pos = d.get("pos") or {}
        out.append(
            {
                "file": d.get("file"),
                "line": pos.get("line"),
                "col": pos.get("col"),
                "severity": d["severity"],
                "message": d["message"],
            }
        )
    return out


def ids(paths: List[Path]) -> List[str]:
    return [p.name for p in paths]


# -- loading ---------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_summary_equals_check_json(cli: Path, path: Path) -> None:
    p = microseg.Policy.from_file(rel(path))
    assert p.summary() == cli_json(cli, "check", "--json", rel(path))
    assert p.check() == cli_diagnostics(cli_json(cli, "check", "--json", rel(path)))


def test_from_text_and_from_dict_equal_from_file() -> None:
    path = REPO / "examples" / "three-tier.toml"
    a = microseg.Policy.from_file(path)
    b = microseg.Policy.from_text(path.read_text(), format="toml", filename=rel(path))
    c = microseg.Policy.from_dict(a.to_dict())
    yaml_text = json.dumps(a.to_dict())  # JSON is YAML
    d = microseg.Policy.from_text(yaml_text, format="yaml")
    for other in (b, c, d):
        assert other.compile(role="web", format="nft-json") == a.compile(
            role="web", format="nft-json"
        )
        assert microseg.diff(a, other)["changes"] == []
    assert a.file == rel(path) or a.file == str(path)
    assert b.file == rel(path)
    assert c.file is None
    assert a.roles == ["app", "db", "web"]
    assert a.flows == ["public-web", "web-to-app", "app-to-db", "admin-ssh", "db-backup"]
    assert "admin" in a.groups and "ssh" in a.services and a.table == "microseg"
    assert repr(a).startswith("<microseg.Policy file=")


@pytest.mark.parametrize("path", MALFORMED, ids=ids(MALFORMED))
def test_malformed_policy_error_equals_cli(cli: Path, path: Path) -> None:
    with pytest.raises(microseg.PolicyError) as info:
        microseg.Policy.from_file(rel(path))
    err = info.value
    r = run_cli(cli, "check", rel(path), ok=False)
    assert r.returncode == 1
    # The CLI prints every diagnostic, then "FILE: N errors".
    cli_lines = r.stderr.rstrip("\n").split("\n")
    assert str(err).split("\n") == cli_lines[:-1]
    assert err.diagnostics == cli_diagnostics(
        cli_json_allow_fail(cli, "check", "--json", rel(path))
    )
    assert err.errors and all(d["severity"] == "error" for d in err.errors)
    assert isinstance(err, microseg.MicrosegError)


def cli_json_allow_fail(cli: Path, *args: str) -> Any:
    return json.loads(run_cli(cli, *args, ok=False).stdout)


def test_malformed_from_text_and_from_dict() -> None:
    path = REPO / "tests" / "malformed" / "63-several-independent-errors.toml"
    with pytest.raises(microseg.PolicyError) as info:
        microseg.Policy.from_text(path.read_text(), filename="inline.toml")
    lines = str(info.value).split("\n")
    assert len(lines) == 4
    assert lines[0].startswith("inline.toml:2:11: error: unsupported version 2")
    # A dict goes through JSON: the same messages, without positions.
    doc = {
        "version": 1,
        "groups": {"web": ["10.10.1.10/28"], "db": ["10.10.1.30"]},
        "services": {"postgres": ["tcp/5432"]},
        "flows": [{"from": "web", "to": "db", "services": ["postgress"], "action": "deny!"}],
    }
    with pytest.raises(microseg.PolicyError) as info:
        microseg.Policy.from_dict(doc)
    msgs = [d["message"] for d in info.value.diagnostics]
    assert any('"10.10.1.10/28" has host bits set: did you mean "10.10.1.0/28"?' in m for m in msgs)
    assert any('unknown service "postgress": did you mean "postgres"?' in m for m in msgs)
    assert all(d["line"] is None and d["col"] is None for d in info.value.diagnostics)
    assert str(info.value).startswith("error: ")
    # Pickling keeps the diagnostics.
    again = pickle.loads(pickle.dumps(info.value))
    assert again.diagnostics == info.value.diagnostics and str(again) == str(info.value)


def test_request_errors() -> None:
    p = microseg.Policy.from_file("examples/three-tier.toml")
    with pytest.raises(microseg.RequestError, match=r'unknown role "wbe": did you mean "web"\?'):
        p.compile(role="wbe")
    with pytest.raises(ValueError, match="give role or host, not both"):
        p.compile(role="web", host="10.10.1.10")
    with pytest.raises(ValueError, match="holds no role"):
        p.compile(host="192.0.2.1")
    with pytest.raises(ValueError, match="unknown compile format"):
        p.compile(role="web", format="iptables")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address"):
        p.query("10.10.1.300", "10.10.1.20", "tcp/80")
    with pytest.raises(ValueError, match="different IP families"):
        p.query("10.10.1.10", "2001:db8::1", "tcp/80")
    with pytest.raises(ValueError):
        p.query("10.10.1.10", "10.10.1.20", "tcp/80-90")
    with pytest.raises(ValueError, match="unknown policy format"):
        microseg.Policy.from_text("version = 1", format="ini")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError) as info:
        microseg.Policy.from_file("does/not/exist.toml")
    assert info.value.filename == "does/not/exist.toml"
    with pytest.raises(ValueError, match="needs a dict"):
        microseg.Policy.from_dict([1, 2])  # type: ignore[arg-type]


# -- compile -----------------------------------------------------------------


def targets(p: microseg.Policy) -> List[Tuple[str, str]]:
    out = [("--role", r) for r in p.roles]
    # One host per role (its first address), which may hold several roles.
    for a in sample_addresses(p):
        if p.roles_of(a):
            out.append(("--host", a))
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
@pytest.mark.parametrize("fmt", ["nft", "nft-json", "ir"])
def test_compile_equals_cli(cli: Path, path: Path, fmt: str) -> None:
    p = microseg.Policy.from_file(rel(path))
    for flag, value in targets(p):
        kw = {"role": value} if flag == "--role" else {"host": value}
        want = run_cli(cli, "compile", rel(path), flag, value, "--format", fmt).stdout
        assert p.compile(format=fmt, **kw) == want, (flag, value)  # type: ignore[arg-type]


def test_compile_sysctl(cli: Path, tmp_path: Path) -> None:
    text = (
        (REPO / "examples" / "three-tier.toml")
        .read_text()
        .replace('table = "microseg"', 'table = "microseg"\nhardening = true')
    )
    path = tmp_path / "hardened.toml"
    path.write_text(text)
    p = microseg.Policy.from_file(path)
    out = p.compile(role="web", format="sysctl")
    assert "net.ipv4.tcp_syncookies = 1" in out and out.endswith("\n")
    assert (
        microseg.Policy.from_file("examples/three-tier.toml").compile(role="web", format="sysctl")
        == ""
    )
    if "sysctl" in run_cli(cli, "compile", "--help").stdout:
        assert (
            out == run_cli(cli, "compile", str(path), "--role", "web", "--format", "sysctl").stdout
        )


def test_compile_firewalld(cli: Path) -> None:
    p = microseg.Policy.from_file("examples/three-tier.toml")
    out = json.loads(p.compile(role="app", format="firewalld"))
    assert out["table"] == "microseg" and "zone" in out
    r = run_cli(
        cli,
        "compile",
        "examples/three-tier.toml",
        "--role",
        "app",
        "--format",
        "firewalld",
        ok=False,
    )
    if r.returncode == 0:  # the CLI knows the format
        assert json.loads(r.stdout) == out


def test_compile_releases_the_gil() -> None:
    """Threads compiling at once get the same results as one after another."""
    p = microseg.Policy.from_file("examples/dual-stack.toml")
    want = {r: p.compile(role=r, format="nft-json") for r in p.roles}
    got: Dict[str, str] = {}
    errors: List[BaseException] = []

    def work(role: str) -> None:
        try:
            for _ in range(20):
                got[role] = p.compile(role=role, format="nft-json")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(r,)) for r in p.roles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and got == want


# -- query, matrix, diff -----------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_query_equals_cli(cli: Path, path: Path) -> None:
    p = microseg.Policy.from_file(rel(path))
    verdicts = set()
    for src, dst, port in connections(p, 80, seed=len(path.name)):
        got = p.query(src, dst, port)
        want = cli_json(
            cli, "query", rel(path), "--from", src, "--to", dst, "--port", port, "--json"
        )
        assert got == want, (src, dst, port)
        verdicts.add(got["verdict"])
    assert verdicts == {"allow", "deny"}


def test_query_three_tier() -> None:
    p = microseg.Policy.from_file("examples/three-tier.toml")
    q = p.query("10.10.1.10", "10.10.1.20", "tcp/8080")
    assert q["verdict"] == "allow"
    assert q["receiver"] is not None and q["receiver"]["reasons"] == ['flow "web-to-app" (allow)']
    assert p.query("10.10.1.20", "10.10.1.10", "tcp/8080")["verdict"] == "deny"
    assert p.roles_of("10.10.1.25") == ["app"] and p.roles_of("192.0.2.1") == []


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_matrix_equals_cli(cli: Path, path: Path) -> None:
    p = microseg.Policy.from_file(rel(path))
    assert p.matrix() == cli_json(cli, "matrix", "--json", rel(path))
    assert p.matrix_text() == run_cli(cli, "matrix", rel(path)).stdout


def test_diff(cli: Path, tmp_path: Path) -> None:
    base = (REPO / "examples" / "three-tier.toml").read_text()
    edited = base.replace('services = ["postgres", "mysql"]', 'services = ["postgres"]')
    assert edited != base
    old = microseg.Policy.from_text(base)
    new = microseg.Policy.from_text(edited)
    d = microseg.diff(old, new)
    assert d["changes"], d
    assert all(c["ports"] == ["tcp/3306"] for c in d["changes"])
    assert any(c["old"] == "accept" and c["new"] == "drop" for c in d["changes"])
    assert microseg.diff(old, old)["changes"] == []
    text = microseg.diff_text(old, new)
    assert "tcp/3306: accept -> drop" in text
    if "diff" in cli_subcommands(cli):
        (tmp_path / "old.toml").write_text(base)
        (tmp_path / "new.toml").write_text(edited)
        args = [str(tmp_path / "old.toml"), str(tmp_path / "new.toml")]
        assert cli_json(cli, "diff", *args, "--json") == d
        assert run_cli(cli, "diff", *args).stdout == text


@pytest.mark.parametrize("pair", [(0, 1), (1, 0)])
def test_diff_examples_equal_cli(cli: Path, pair: Tuple[int, int]) -> None:
    if "diff" not in cli_subcommands(cli):
        pytest.skip("the CLI has no diff subcommand")
    old, new = (EXAMPLES[i] for i in pair)
    got = microseg.diff(microseg.Policy.from_file(old), microseg.Policy.from_file(new))
    assert got == cli_json(cli, "diff", rel(old), rel(new), "--json")


def test_version_and_exports() -> None:
    assert microseg.__version__
    for name in ("Policy", "Host", "PolicyError", "BackendError", "RequestError", "diff"):
        assert hasattr(microseg, name)
    assert issubclass(microseg.RequestError, ValueError)
    assert issubclass(microseg.PolicyError, microseg.MicrosegError)
    pkg = Path(microseg.__file__).parent
    assert (pkg / "py.typed").exists() and (pkg / "__init__.pyi").exists()
