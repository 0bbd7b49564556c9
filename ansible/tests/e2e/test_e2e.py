"""End to end: one ansible-playbook against network-namespace test hosts.

Applies the three-tier policy to four servers (web1, web2, app1, db1), proves the
connectivity matrix with real TCP connections between seven hosts (the servers
plus admin, backup and an outside host), runs again (every host changed=0),
edits the policy and runs with --check --diff (the diff is shown, nothing
changes: rulesets, records and boot files byte for byte), then removes it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import microseg
from lab import BIN, HERE, OTHERS, REPO, SERVERS, Lab, ansible_env, needs_root
from microseg import _native

PORTS = [22, 80, 443, 8080, 5432, 3306, 2500, 3300, 9999]
RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)


def write_inventory(tmp: Path, lab: Lab) -> Path:
    hosts: Dict[str, Dict[str, Any]] = {}
    for name in SERVERS:
        d = tmp / "hosts" / name
        hosts[name] = {
            "ansible_netns": lab.ns(name),
            "microseg_state_dir": str(d / "state"),
            "microseg_persist_path": str(d / "boot" / "microseg.nft"),
        }
    hosts["app1"]["microseg_role"] = "app"  # the others find their role from their address
    inventory = {
        "all": {
            "vars": {"ansible_connection": "netns", "ansible_python_interpreter": sys.executable},
            "children": {"servers": {"hosts": hosts}},
        }
    }
    path = tmp / "inventory.yml"
    path.write_text(json.dumps(inventory, indent=2))  # JSON is YAML
    return path


def write_policy(tmp: Path, document: Dict[str, Any]) -> Path:
    path = tmp / "policy.yml"
    path.write_text(json.dumps({"microseg_policy": document}, indent=2))
    return path


def playbook(
    tmp: Path, inventory: Path, policy_vars: Path, *args: str
) -> Tuple[str, Dict[str, Dict[str, int]]]:
    """Runs site.yml; returns its output and the recap per host."""
    r = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(HERE / "site.yml"),
            "-e",
            f"policy_vars={policy_vars}",
            *args,
        ],
        env=ansible_env(tmp),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = r.stdout + r.stderr
    recap = {
        m.group(1): {
            "ok": int(m.group(2)),
            "changed": int(m.group(3)),
            "unreachable": int(m.group(4)),
            "failed": int(m.group(5)),
        }
        for m in RECAP.finditer(out)
    }
    assert r.returncode == 0, out
    assert set(recap) == set(SERVERS), out
    return out, recap


def expected_matrix(
    policy: microseg.Policy, hosts: Dict[str, str]
) -> Dict[Tuple[str, str, int], bool]:
    return {
        (s, d, p): policy.query(hosts[s], hosts[d], f"tcp/{p}")["verdict"] == "allow"
        for s in hosts
        for d in hosts
        if s != d
        for p in PORTS
    }


def state_fingerprint(lab: Lab, tmp: Path) -> Dict[str, str]:
    """Every host's ruleset and every file of the records and boot files."""
    fp = {f"ruleset:{h}": lab.ruleset(h) for h in SERVERS}
    for f in sorted((tmp / "hosts").rglob("*")):
        if f.is_file():
            fp[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return fp


def test_playbook_end_to_end(lab: Lab, tmp_dir: Path) -> None:
    hosts = {**SERVERS, **OTHERS}
    policy = microseg.Policy.from_file(REPO / "examples" / "three-tier.toml")
    document = policy.to_dict()
    inventory = write_inventory(tmp_dir, lab)
    policy_vars = write_policy(tmp_dir, document)
    lab.listen(PORTS)

    # The lab itself: before any policy every connection succeeds.
    before = lab.probe(list(hosts), list(hosts), [22, 9999])
    assert set(before.values()) == {"open"}, before

    # 1. Apply: every server changes.
    out, recap = playbook(tmp_dir, inventory, policy_vars)
    assert all(r["changed"] == 1 and r["failed"] == 0 for r in recap.values()), out
    for h in SERVERS:
        assert "table inet microseg" in lab.ruleset(h)

    # The connectivity matrix, with real connections, equals the policy's.
    want = expected_matrix(policy, hosts)
    got = lab.probe(list(hosts), list(hosts), PORTS)
    wrong = sorted(
        f"{s} -> {d} tcp/{p}: expected {'open' if want[(s, d, p)] else 'closed'}, "
        f"got {got[(s, d, p)]}"
        for (s, d, p) in want
        if want[(s, d, p)] != (got[(s, d, p)] == "open")
    )
    assert not wrong, "\n".join(wrong)
    assert {v for k, v in got.items() if not want[k]} == {"timeout"}  # dropped, not refused
    opened = sum(want.values())
    assert 20 < opened < len(want) - 100, opened  # a real mix of open and closed cells
    assert got[("web1", "app1", 8080)] == "open" and got[("app1", "web1", 8080)] == "timeout"
    assert got[("db1", "backup", 2500)] == "open" and got[("outside", "app1", 80)] == "timeout"

    # 2. Again, with --diff: nothing changes and no diff is shown.
    out, recap = playbook(tmp_dir, inventory, policy_vars, "--diff")
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), out
    assert "--- before" not in out, out

    # 3. Edit the policy (app-to-db loses mysql) and run with --check --diff.
    fingerprint = state_fingerprint(lab, tmp_dir)
    for flow in document["flows"]:
        if flow.get("name") == "app-to-db":
            flow["services"] = ["postgres"]
    edited = microseg.Policy.from_dict(document)
    assert microseg.diff(policy, edited)["changes"], "the edit must change something"
    policy_vars = write_policy(tmp_dir, document)
    out, recap = playbook(tmp_dir, inventory, policy_vars, "--check", "--diff")
    changed = {h: r["changed"] for h, r in recap.items()}
    assert changed == {"web1": 0, "web2": 0, "app1": 1, "db1": 1}, out
    diff_lines = [
        line
        for line in out.splitlines()
        if line[:1] in ("+", "-") and not line.startswith(("+++", "---"))
    ]
    assert any(line.startswith("-") and "3306" in line for line in diff_lines), out
    assert any(line.startswith("+") and "5432 : jump f_app-to-db" in line for line in diff_lines), out
    # Only what decides the edited flow differs (kernel listing and rendering
    # normalise alike): its class chains (named by what they decide) and the
    # address map elements that jump to them.
    assert all(
        "app-to-db" in line
        or re.search(r"(in|out)[46]_[0-9a-f]{16}", line)
        or line[1:].strip() in ("{", "}", "")
        for line in diff_lines
    ), "\n".join(diff_lines)
    assert state_fingerprint(lab, tmp_dir) == fingerprint, "check mode changed something"
    still = lab.probe(["app1"], ["db1"], [3306])
    assert still[("app1", "db1", 3306)] == "open"

    # 4. state=absent removes the policy's table, nothing else.
    out, recap = playbook(tmp_dir, inventory, policy_vars, "-e", "microseg_state=absent")
    assert all(r["changed"] == 1 for r in recap.values()), out
    for h in SERVERS:
        assert "microseg" not in lab.ruleset(h)


def test_playbook_with_the_plain_lowering(lab: Lab, tmp_dir: Path) -> None:
    """lowering: plain installs one rule per flow with named sets (the default:
    verdict maps); real connections still equal the policy."""
    hosts = {**SERVERS, **OTHERS}
    policy = microseg.Policy.from_file(REPO / "examples" / "three-tier.toml")
    inventory = write_inventory(tmp_dir, lab)
    policy_vars = write_policy(tmp_dir, policy.to_dict())
    lab.listen(PORTS)
    out, recap = playbook(tmp_dir, inventory, policy_vars, "-e", "microseg_lowering=plain")
    assert all(r["changed"] == 1 and r["failed"] == 0 for r in recap.values()), out
    for h in SERVERS:
        assert "vmap" not in lab.ruleset(h) and "saddr @" in lab.ruleset(h), h
    want = expected_matrix(policy, hosts)
    got = lab.probe(list(hosts), list(hosts), PORTS)
    wrong = sorted(
        f"{s} -> {d} tcp/{p}" for (s, d, p) in want if want[(s, d, p)] != (got[(s, d, p)] == "open")
    )
    assert not wrong, "\n".join(wrong)
    out, recap = playbook(tmp_dir, inventory, policy_vars, "-e", "microseg_lowering=plain")
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), out


def module_on(tmp: Path, inventory: Path, host: str, args: str) -> Dict[str, Any]:
    """Runs the module ad hoc on one inventory host; returns its result."""
    r = subprocess.run(
        [
            str(BIN / "ansible"),
            host,
            "-i",
            str(inventory),
            "-m",
            "microseg.firewall.policy",
            "-a",
            args,
        ],
        env=ansible_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(json.loads(r.stdout.split("=>", 1)[1]))


def test_confirm_timeout_rolls_back_unless_confirmed(lab: Lab, tmp_dir: Path) -> None:
    inventory = write_inventory(tmp_dir, lab)
    state = tmp_dir / "hosts" / "web1" / "state"
    common = f"policy_file={REPO}/examples/three-tier.toml state_dir={state} persist=false"
    r = module_on(tmp_dir, inventory, "web1", f"{common} confirm_timeout=2")
    assert r["changed"] and r["pending"]["timer_running"], r
    assert r["target"] == "host 10.10.1.10" and r["roles"] == ["web"]
    assert "table inet microseg" in lab.ruleset("web1")
    deadline = time.monotonic() + 20
    while "table inet microseg" in lab.ruleset("web1") and time.monotonic() < deadline:
        time.sleep(0.25)
    assert "table inet microseg" not in lab.ruleset("web1"), "the timer did not roll back"

    r = module_on(tmp_dir, inventory, "web1", f"{common} confirm_timeout=60")
    assert r["changed"] and r["pending"]
    r = module_on(tmp_dir, inventory, "web1", f"confirm=true state_dir={state}")
    assert r["changed"] and "confirmed" in r["report"], r
    r = module_on(tmp_dir, inventory, "web1", f"confirm=true state_dir={state}")
    assert not r["changed"], r
    assert "table inet microseg" in lab.ruleset("web1")
    r = module_on(tmp_dir, inventory, "web1", f"{common} state=absent")
    assert r["changed"] and "table inet microseg" not in lab.ruleset("web1")


def adhoc(
    tmp: Path, python: str, args: str, *extra: str, env: Optional[Dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    """The module on localhost (local connection) with `python` as interpreter."""
    local = ["localhost", "-i", "localhost,", "-c", "local"]
    interpreter = ["-e", f"ansible_python_interpreter={python}"]
    return subprocess.run(
        [
            str(BIN / "ansible"),
            *local,
            *interpreter,
            "-m",
            "microseg.firewall.policy",
            "-a",
            args,
            *extra,
        ],
        env={**ansible_env(tmp), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bad_policy_fails_with_the_located_message(tmp_dir: Path) -> None:
    """Nothing is touched: the module fails while loading the policy."""
    bad = REPO / "tests" / "malformed" / "63-several-independent-errors.toml"
    r = adhoc(tmp_dir, sys.executable, f"policy_file={bad} role=web state_dir={tmp_dir}/state")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert f"{bad}:2:11: error: unsupported version 2" in out, out
    assert f'{bad}:11:13: error: unknown service \\"postgress\\": did you mean' in out, out
    assert '"diagnostics"' in out and '"line": 12' in out, out
    assert not (tmp_dir / "state").exists()


def test_missing_wheel_gives_missing_required_lib(tmp_dir: Path) -> None:
    bare = tmp_dir / "bare"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=60
    )
    python = bare / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import microseg"], capture_output=True, check=False)
    assert probe.returncode != 0, "the bare venv must not see microseg"
    r = adhoc(tmp_dir, str(python), f"policy_file={REPO}/examples/three-tier.toml role=web")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Failed to import the required Python library (microseg)" in out, out


def test_ansible_doc_renders(tmp_dir: Path) -> None:
    env = ansible_env(tmp_dir)
    modules = (
        REPO / "ansible" / "ansible_collections" / "microseg" / "firewall" / "plugins" / "modules"
    )
    for argv in (
        ["microseg.firewall.policy"],
        ["-M", str(modules), "microseg.firewall.policy"],
    ):
        r = subprocess.run(
            [str(BIN / "ansible-doc"), *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        for word in ("policy_file", "confirm_timeout", "EXAMPLES", "RETURN VALUES", "check_mode"):
            assert word in r.stdout, (word, r.stdout)
        assert "ERROR" not in r.stderr and "WARNING" not in r.stderr, r.stderr
    r = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "microseg.firewall.policy"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    doc = json.loads(r.stdout)["microseg.firewall.policy"]
    options: Dict[str, Any] = doc["doc"]["options"]
    assert {"policy", "policy_file", "role", "backend", "state", "confirm_timeout"} <= set(options)
    assert options["backend"]["choices"] == ["nftables", "firewalld"]
    assert options["state"]["choices"] == ["present", "absent"]
    assert "plan" in doc["return"] and doc["examples"]


def normalise(texts: List[str]) -> List[str]:
    """The module's `normalize_nft_text` of each text (run in a fresh interpreter:
    this process's `ansible` name is the test package's)."""
    modules = (
        REPO / "ansible" / "ansible_collections" / "microseg" / "firewall" / "plugins" / "modules"
    )
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(modules)!r})\n"
        "import policy\n"
        "print(json.dumps([policy.normalize_nft_text(t) for t in json.load(sys.stdin)]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd="/",
    )
    return list(json.loads(r.stdout))


def test_normalised_listing_equals_rendering(lab: Lab) -> None:
    """The diff of check mode compares microseg's rendering with the kernel's listing:
    normalised, every role of every example lists exactly as rendered."""
    rendered: List[str] = []
    listed: List[str] = []
    for path in sorted((REPO / "examples").glob("*.toml")):
        p = microseg.Policy.from_file(path)
        for role in p.roles:
            text = p.compile(role=role)
            subprocess.run(
                ["ip", "netns", "exec", lab.ns("outside"), "nft", "-f", "-"],
                input=text,
                text=True,
                check=True,
                timeout=30,
            )
            rendered.append(text)
            listed.append(lab.exec("outside", ["nft", "-s", "list", "table", "inet", p.table]))
    a, b = normalise(rendered), normalise(listed)
    assert a == b
    assert len(set(a)) == len(a) > 3
    assert all(t.startswith("table inet ") and "\tchain input {" in t for t in a)


def test_firewalld_backend(tmp_dir: Path) -> None:
    """backend=firewalld against a private firewalld (its own bus and namespace): the
    module runs locally and touches only that firewalld."""
    needs_root()
    if not (shutil.which("firewalld") and shutil.which("dbus-daemon")):
        pytest.skip("needs firewalld and dbus-daemon")
    fw = _native._PrivateFirewalld()
    try:
        env = {"DBUS_SYSTEM_BUS_ADDRESS": fw.bus_address}
        args = (
            f"policy_file={REPO}/examples/three-tier.toml role=db backend=firewalld "
            f"state_dir={tmp_dir}/state"
        )

        def run(*extra: str) -> Dict[str, Any]:
            r = adhoc(tmp_dir, sys.executable, args, *extra, env=env)
            assert r.returncode == 0, r.stdout + r.stderr
            result = dict(json.loads(r.stdout.split("=>", 1)[1].split("\n}\n", 1)[0] + "\n}"))
            result["_output"] = r.stdout
            return result

        r = run("--check", "--diff")
        shown = r["_output"].split("localhost | ", 1)[0]  # the diff, printed before the result
        assert r["changed"] and r["plan_text"] in shown and "+ zone microseg" in shown, r
        r = run()
        assert r["changed"] and r["target"] == "role db", r
        assert not run()["changed"]
        r = adhoc(tmp_dir, sys.executable, args + " state=absent", env=env)
        assert r.returncode == 0 and '"changed": true' in r.stdout, r.stdout
    finally:
        fw.close()
