#!/usr/bin/python
# Copyright: microseg contributors
# MIT OR Apache-2.0

"""Ansible module microseg.firewall.policy: one microsegmentation policy -> this host's firewall."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: policy
short_description: Make a host's firewall match a microseg microsegmentation policy
description:
  - Compiles one declarative microseg policy (address groups, services, roles and
    allowed flows for a whole estate) for the role this host plays, and makes the
    host's firewall match it, touching nothing the policy does not own (with
    nftables, only the table C(inet <table>)).
  - A thin layer over the C(microseg) Python bindings, which must be installed on
    the target (the wheel built from C(bindings-python/) of the microseg repository).
  - Applies are planned (unchanged, incremental set-member changes, or an atomic
    replacement), locked, snapshotted for rollback and refused when the running
    SSH session's client would lose access (unless O(force=true)).
  - Check mode computes the real plan against the installed ruleset and changes
    nothing. Diff mode returns the installed ruleset before and after (with nftables
    as C(nft -s list table) prints it, normalised; with firewalld the owned objects
    as JSON, and the plan in check mode).
version_added: "0.1.0"
author:
  - microseg contributors
requirements:
  - python >= 3.9
  - microseg (the Python bindings) on the target
  - nftables (C(nft)) or firewalld, and iproute2 (C(ip)) on the target
options:
  policy:
    description:
      - The policy document as a dictionary (the same keys as the TOML, JSON or YAML policy format).
      - Validated exactly as a JSON policy file; messages carry no line numbers.
      - Mutually exclusive with O(policy_file).
    type: dict
  policy_file:
    description:
      - Path of a policy file B(on the target) (C(.toml), C(.json), C(.yaml)/C(.yml)).
      - Errors name the file, line and column.
      - Mutually exclusive with O(policy).
    type: path
  role:
    description:
      - The role whose ruleset this host gets.
      - V(auto) picks the one address of this host (C(ip -j addr show)) that the
        policy manages and compiles for it (the union of its roles).
    type: str
    default: auto
  backend:
    description:
      - The firewall backend. V(firewalld) is driven over D-Bus (the system bus, or
        C(DBUS_SYSTEM_BUS_ADDRESS)) and persists by itself (O(persist) does not apply).
    type: str
    choices: [nftables, firewalld]
    default: nftables
  state:
    description:
      - V(present) installs the policy's ruleset; V(absent) removes everything
        the policy installed (its table) and nothing else.
    type: str
    choices: [present, absent]
    default: present
  confirm_timeout:
    description:
      - Seconds. The change rolls itself back unless confirmed in time by a later
        task with O(confirm=true). Run that task after a C(reset_connection) meta task,
        so that a new connection proves the host is still reachable.
    type: int
  confirm:
    description:
      - Only keep a change applied with O(confirm_timeout) (no policy needed).
      - Reports C(changed=false) when no change is waiting.
    type: bool
    default: false
  force:
    description:
      - Apply even when the anti-lockout check finds that the SSH session's client
        (C(SSH_CONNECTION)) could not connect again.
    type: bool
    default: false
  refresh:
    description:
      - Plan from a full read of what is installed, every set member included.
      - By default the plan starts from the record of the last operation when the
        installed rules, chains and set definitions still match it (a cheap check);
        set members changed by hand are then reported by C(microseg status), not undone.
    type: bool
    default: false
  lowering:
    description:
      - O(backend=nftables) only. How the rules are laid out.
      - V(optimized) (the default) installs verdict maps over an exact partition of
        the addresses, so that a new connection meets a bounded number of rules and
        lookups whatever the number of flows and hosts.
      - V(plain) installs one rule per flow and direction with named address sets
        (what C(microseg compile) prints by default).
      - Both take a membership change as additions and deletions of elements
        (counters and established connections untouched).
    type: str
    choices: [optimized, plain]
  optimize:
    description:
      - O(backend=nftables) only. The same as O(lowering=optimized), the default;
        kept for playbooks written when it was not.
    type: bool
    default: false
  state_dir:
    description:
      - Directory of microseg's records, lock and rollback snapshot on the target.
      - Default C($MICROSEG_STATE_DIR), else C(/var/lib/microseg).
    type: path
  persist:
    description:
      - Write the ruleset where it is loaded at boot (nftables
        C(/etc/nftables.d/<table>.nft), or O(persist_path)).
    type: bool
    default: true
  persist_path:
    description:
      - Where to persist the ruleset instead of the backend's default place
        (ignored with O(persist=false)).
    type: path
  sysctl_file:
    description:
      - For policies with C(hardening), where its sysctl.d file goes (default
        C(/etc/sysctl.d/99-<table>.conf); none with O(persist=false)). The kernel
        values are set either way.
    type: path
  table:
    description:
      - With O(state=absent) and no policy, the table to remove (default the one
        the state directory records, else C(microseg)).
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - The connection plan of a change is in RV(plan_text); RV(plan) is
    V(unchanged), V(incremental) or V(replace).
seealso:
  - name: microseg policy format
    description: The policy document's keys and semantics.
    link: https://example.invalid/microseg
"""

EXAMPLES = r"""
- name: Every server gets its role's firewall from one policy
  microseg.firewall.policy:
    policy: "{{ microseg_policy }}"
    role: auto

- name: From a policy file on the target, with a rollback timer
  microseg.firewall.policy:
    policy_file: /etc/microseg/policy.toml
    role: web
    confirm_timeout: 60

- name: New connection to prove the host is still reachable
  ansible.builtin.meta: reset_connection

- name: Keep the change
  microseg.firewall.policy:
    confirm: true

- name: Remove what the policy installed
  microseg.firewall.policy:
    policy_file: /etc/microseg/policy.toml
    state: absent
"""

RETURN = r"""
target:
  description: What the ruleset was compiled for.
  returned: when a policy is given
  type: str
  sample: host 10.10.1.10
roles:
  description: The roles of the target.
  returned: when a policy is given
  type: list
  elements: str
  sample: [web]
table:
  description: The nftables table the policy owns.
  returned: always
  type: str
  sample: microseg
plan:
  description: How much the apply changes (V(unchanged), V(incremental) or V(replace)).
  returned: when state=present
  type: str
  sample: replace
plan_text:
  description: The plan, for people.
  returned: when state=present
  type: str
report:
  description: What was done (in check mode, would be done), as the C(microseg) command prints it.
  returned: always
  type: str
pending:
  description: The confirmation the change waits for (deadline, timer pid), with O(confirm_timeout).
  returned: when state=present
  type: dict
lint:
  description: Warnings about the policy (unused groups, shadowed flows, no admin SSH path...).
  returned: when a policy is given
  type: list
  elements: str
diagnostics:
  description: On an invalid policy, every problem found (file, line, col, severity, message).
  returned: failure
  type: list
  elements: dict
"""

import re
import traceback
from typing import Any, Dict, List, Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

MICROSEG_IMPORT_ERROR: Optional[str]
try:
    import microseg

    HAS_MICROSEG = True
    MICROSEG_IMPORT_ERROR = None
except ImportError:
    HAS_MICROSEG = False
    MICROSEG_IMPORT_ERROR = traceback.format_exc()


_SET_BRACES = re.compile(r"\{ ([^{}\n]*) \}")
_ELEMENTS = re.compile(r"elements = \{([^{}]*)\}", re.DOTALL)


def normalize_nft_text(text: Optional[str]) -> str:
    """An nft ruleset in one canonical text, so that microseg's rendering and the
    kernel's listing (``nft -s list table``) of the same ruleset compare equal:
    comments, blank lines and the replace preamble dropped, element lists on one
    line and sorted (a hash map lists in bucket order), anonymous set members sorted,
    nft's default ``burst 5 packets`` dropped."""
    if not text:
        return ""
    # Element lists in sorted order (a hash set lists in bucket order).
    text = _ELEMENTS.sub(
        lambda m: "elements = { "
        + ", ".join(sorted(" ".join(x.split()) for x in m.group(1).split(",")))
        + " }",
        text,
    )
    # Long anonymous sets and maps continue on the next lines.
    text = re.sub(r",\s*\n\s*", ", ", text)
    out: List[str] = []
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.fullmatch(r"(delete )?table inet \S+", line):
            continue
        line = line.replace(" burst 5 packets", "")
        line = _SET_BRACES.sub(
            lambda m: "{ " + ", ".join(sorted(x.strip() for x in m.group(1).split(","))) + " }",
            line,
        )
        if line.startswith("}"):
            depth = max(depth - 1, 0)
        out.append("\t" * depth + line)
        if line.endswith("{"):
            depth += 1
    return "\n".join(out) + "\n"


def _fail_from(module: AnsibleModule, e: BaseException, **extra: Any) -> None:
    """Fails the task with the bindings' message (located for policy errors)."""
    if isinstance(e, microseg.PolicyError):
        module.fail_json(msg=str(e), diagnostics=e.diagnostics, **extra)
    if isinstance(e, microseg.BackendError):
        module.fail_json(msg=str(e), kind=e.kind, command=e.command, stderr=e.stderr, **extra)
    module.fail_json(msg=str(e), **extra)


def _persist(p: Dict[str, Any], path_option: str) -> Any:
    """False with persist=false; else the path option, or True (the default place)."""
    if not p["persist"]:
        return False
    return p[path_option] or True


def _load_policy(module: AnsibleModule) -> Optional[Any]:
    p = module.params
    try:
        if p["policy"] is not None:
            return microseg.Policy.from_dict(p["policy"])
        if p["policy_file"] is not None:
            return microseg.Policy.from_file(p["policy_file"])
    except (microseg.MicrosegError, OSError) as e:
        _fail_from(module, e)
    return None


def _confirm(module: AnsibleModule, host: Any, table: Optional[str]) -> None:
    try:
        status = host.status(table)
        if status.get("pending") is None:
            module.exit_json(
                changed=False,
                table=status["owned"].split()[-1],
                report="nothing to confirm: no change is waiting for confirmation\n",
            )
        if module.check_mode:
            module.exit_json(
                changed=True,
                table=status["owned"].split()[-1],
                report="check mode: the pending change would be confirmed\n",
            )
        r = host.confirm(table)
    except microseg.MicrosegError as e:
        _fail_from(module, e)
    module.exit_json(changed=True, table=r["owned"].split()[-1], report=r["text"])


def _absent(module: AnsibleModule, host: Any, policy: Optional[Any]) -> None:
    p = module.params
    table = policy.table if policy is not None else p["table"]
    result: Dict[str, Any] = {}
    try:
        before = host.installed_text(table) if module._diff else None
        if module.check_mode:
            r = host.remove(table, dry_run=True)
        else:
            r = host.remove(table, persist=_persist(p, "persist_path"))
    except microseg.MicrosegError as e:
        _fail_from(module, e)
    result.update(changed=bool(r["changed"]), table=r["owned"].split()[-1], report=r["text"])
    if module._diff:
        result["diff"] = {
            "before": normalize_nft_text(before) if p["backend"] == "nftables" else before or "",
            "after": "",
            "before_header": f"{r['owned']} (installed)",
            "after_header": f"{r['owned']} (removed)",
        }
    module.exit_json(**result)


def _lowering(p: Dict[str, Any]) -> Optional[str]:
    """The lowering asked for (None: the backend's default, or not nftables)."""
    if p["backend"] != "nftables":
        return None
    if p["optimize"]:
        return "optimized"
    return p["lowering"]


def _present(module: AnsibleModule, host: Any, policy: Any) -> None:
    p = module.params
    try:
        target = host.target(policy, role=p["role"])
        kw = {"role": target["value"]} if target["kind"] == "role" else {"host": target["value"]}
        roles = [target["value"]] if target["kind"] == "role" else policy.roles_of(target["value"])
        before = host.installed_text(policy.table) if module._diff else None
        r = host.apply(
            policy,
            dry_run=module.check_mode,
            force=p["force"],
            refresh=p["refresh"],
            lowering=_lowering(p),
            confirm_timeout=p["confirm_timeout"],
            persist=_persist(p, "persist_path"),
            sysctl_file=_persist(p, "sysctl_file"),
            source=p["policy_file"] or "<ansible policy>",
            **kw,
        )
        if module._diff:
            if module.check_mode:
                after = (
                    policy.compile(
                        format="nft", optimize=_lowering(p) != "plain", **kw
                    )
                    if p["backend"] == "nftables"
                    else None
                )
            else:
                after = host.installed_text(policy.table)
    except microseg.MicrosegError as e:
        _fail_from(module, e, table=policy.table)
    result: Dict[str, Any] = {
        "changed": bool(r["changed"]),
        "target": r["target"],
        "roles": roles,
        "table": policy.table,
        "plan": r["plan"],
        "plan_text": r["plan_text"],
        "report": r["text"],
        "pending": r["pending"],
        "lint": [d["message"] for d in policy.check()],
    }
    if module._diff:
        if p["backend"] == "firewalld" and module.check_mode:
            result["diff"] = {"prepared": r["plan_text"]}
        elif p["backend"] == "firewalld":
            result["diff"] = {"before": before or "", "after": after or ""}
        else:
            result["diff"] = {
                "before": normalize_nft_text(before),
                "after": normalize_nft_text(after),
                "before_header": f"table inet {policy.table} (installed)",
                "after_header": f"table inet {policy.table} ({r['target']})",
            }
    module.exit_json(**result)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "policy": {"type": "dict"},
            "policy_file": {"type": "path"},
            "role": {"type": "str", "default": "auto"},
            "backend": {"type": "str", "default": "nftables", "choices": ["nftables", "firewalld"]},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "confirm_timeout": {"type": "int"},
            "confirm": {"type": "bool", "default": False},
            "force": {"type": "bool", "default": False},
            "refresh": {"type": "bool", "default": False},
            "optimize": {"type": "bool", "default": False},
            "lowering": {"type": "str", "choices": ["optimized", "plain"]},
            "state_dir": {"type": "path"},
            "persist": {"type": "bool", "default": True},
            "persist_path": {"type": "path"},
            "sysctl_file": {"type": "path"},
            "table": {"type": "str"},
        },
        mutually_exclusive=[("policy", "policy_file")],
        supports_check_mode=True,
    )
    if not HAS_MICROSEG:
        module.fail_json(msg=missing_required_lib("microseg"), exception=MICROSEG_IMPORT_ERROR)

    p = module.params
    if p["confirm_timeout"] is not None and p["confirm_timeout"] <= 0:
        module.fail_json(msg="confirm_timeout must be a number of seconds > 0")
    if p["backend"] != "nftables" and (p["optimize"] or p["lowering"]):
        module.fail_json(
            msg="lowering and optimize are choices of backend=nftables; firewalld has its own objects"
        )
    if p["optimize"] and p["lowering"] == "plain":
        module.fail_json(msg="optimize asks for lowering=optimized, not plain: give one of them")
    try:
        host = microseg.Host(backend=p["backend"], state_dir=p["state_dir"])
    except microseg.MicrosegError as e:
        _fail_from(module, e)

    if p["confirm"]:
        _confirm(module, host, p["table"])
    policy = _load_policy(module)
    if p["state"] == "absent":
        _absent(module, host, policy)
    if policy is None:
        module.fail_json(msg="state=present needs policy or policy_file")
    _present(module, host, policy)


if __name__ == "__main__":
    main()
