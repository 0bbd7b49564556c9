#!/usr/bin/env python3
"""Binding overhead: compiling a large policy through Python vs the same Rust code.

    python bindings-python/bench/bench_compile.py [POLICY | --size S|M|L | --synthetic]
                                                  [--roles N] [--rounds R]

The policy: a file; or (the default, ``--size L``) the largest estate of the
benchmarks (``microseg-benches``: 1,000 roles, 100k addresses, 10k flows),
written by ``cargo run --release --example bench_policy -- L``; or
(``--synthetic``, also the fallback when cargo cannot build that example) a
1,000-role / 10,000-flow estate generated here. The ``--roles`` most used roles
(most flows in or out) are compiled to libnftables JSON (IR + nft lowering +
serialisation):

* Rust: ``microseg._native._bench_compile`` runs the loop inside the extension
  (no Python in the loop: the crates' own time);
* Python: ``Policy.compile(role=..., format="nft-json")`` called from Python
  (argument conversion, GIL release, the result string copied into a ``str``).

Per role the best of the rounds is kept on each path (the two interleaved), and
the sums are compared: overhead = Python / Rust, target <= 1.2 (the figure the
issue asks for). Needs a release build of the wheel
(``maturin build --release``); a debug build measures the wrong thing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import microseg
from microseg import _native


def synthetic(roles: int = 1000, flows: int = 10_000, seed: int = 7) -> Dict[str, Any]:
    """A large valid policy document (deterministic)."""
    rng = random.Random(seed)
    groups: Dict[str, List[str]] = {"admin": ["10.255.0.0/24"]}
    for i in range(roles):
        a, b = divmod(i, 250)
        base = f"10.{a + 1}.{b}"
        groups[f"r{i}"] = [f"{base}.10-{base}.19", f"{base}.100"]
    services = {f"s{i}": [f"tcp/{1000 + 7 * i}", f"udp/{2000 + i}"] for i in range(40)}
    services["ssh"] = ["tcp/22"]
    flow_list: List[Dict[str, Any]] = []
    for i in range(flows):
        src, dst = rng.randrange(roles), rng.randrange(roles)
        flow: Dict[str, Any] = {
            "name": f"f{i}",
            "from": f"r{src}",
            "to": [f"r{dst}", f"r{rng.randrange(roles)}"] if i % 5 == 0 else f"r{dst}",
            "services": [f"s{rng.randrange(40)}"],
        }
        if i % 50 == 0:
            flow["action"] = "deny"
            flow["ports"] = [f"tcp/{3000 + i % 1000}"]
            del flow["services"]
        flow_list.append(flow)
    flow_list.append(
        {
            "name": "admin-ssh",
            "from": "admin",
            "to": [f"r{i}" for i in range(roles)],
            "services": ["ssh"],
        }
    )
    return {
        "version": 1,
        "table": "msbench",
        "groups": groups,
        "services": services,
        "roles": {f"r{i}": {} for i in range(roles)},
        "flows": flow_list,
    }


def bench_estate(size: str) -> Optional[Dict[str, Any]]:
    """The benchmarks' estate of `size`, or None (with the reason) if it cannot be built."""
    manifest = Path(__file__).resolve().parents[1] / "Cargo.toml"
    cmd = [
        "cargo",
        "run",
        "--quiet",
        "--release",
        "--manifest-path",
        str(manifest),
        "--example",
        "bench_policy",
        "--",
        size,
    ]
    print(
        f"building the benchmarks' {size} estate: {' '.join(cmd[:2])} ... --example bench_policy",
        file=sys.stderr,
    )
    env = os.environ.copy()
    # Share compiled crates with the main workspace, as scripts/test-python does.
    env.setdefault("CARGO_TARGET_DIR", str(manifest.parents[1] / "target"))
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if r.returncode != 0:
        print(
            f"cannot build it (falling back to --synthetic):\n{r.stderr.strip()[-2000:]}",
            file=sys.stderr,
        )
        return None
    return dict(json.loads(r.stdout))


def busiest_roles(document: Dict[str, Any], roles: List[str], n: int) -> List[str]:
    """The `n` roles named in the most flows (ties: name order)."""
    count = {r: 0 for r in roles}
    for f in document.get("flows", []):
        for side in ("from", "to"):
            ends = f.get(side, [])
            for e in [ends] if isinstance(ends, str) else ends:
                if e in count:
                    count[e] += 1
    return sorted(roles, key=lambda r: (-count[r], r))[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policy", nargs="?", help="a policy file")
    ap.add_argument("--size", default="L", help="the benchmarks' estate S, M or L (default L)")
    ap.add_argument("--synthetic", action="store_true", help="the estate generated here")
    ap.add_argument(
        "--roles", type=int, default=20, help="roles compiled (default: the 20 busiest)"
    )
    ap.add_argument(
        "--rounds", type=int, default=5, help="rounds; each role's best is kept (default 5)"
    )
    ap.add_argument("--format", default="nft-json", choices=["nft", "nft-json", "ir"])
    ap.add_argument("--max-ratio", type=float, help="exit 1 if Python/Rust exceeds this")
    args = ap.parse_args()

    document: Optional[Dict[str, Any]] = None
    if args.policy:
        source = args.policy
    elif not args.synthetic:
        document = bench_estate(args.size)
        source = f"microseg-benches estate {args.size}"
    if document is None and not args.policy:
        document, source = synthetic(), "synthetic (1,000 roles, 10,000 flows)"
    t0 = time.perf_counter()
    if document is None:
        policy = microseg.Policy.from_file(args.policy)
        document = policy.to_dict()
    else:
        policy = microseg.Policy.from_dict(document)
    load = time.perf_counter() - t0
    roles = busiest_roles(document, policy.roles, args.roles)
    print(
        f"policy: {source}: {len(policy.roles)} roles, {len(policy.flows)} flows, "
        f"{len(policy.groups)} groups (loaded in {load:.2f} s)"
    )

    # Warm up both paths (allocator, caches) and check they do the same work.
    size = sum(len(policy.compile(role=r, format=args.format)) for r in roles)
    for r in roles:
        _native._bench_compile(policy, role=r, format=args.format, iterations=1)

    # Per role, the best of `rounds` single compiles on each path, the two paths
    # interleaved so that load from elsewhere on the machine hits both alike.
    rust = [float("inf")] * len(roles)
    python = [float("inf")] * len(roles)
    for _ in range(args.rounds):
        for i, r in enumerate(roles):
            rust[i] = min(rust[i], _native._bench_compile(policy, role=r, format=args.format))
            start = time.perf_counter()
            policy.compile(role=r, format=args.format)
            python[i] = min(python[i], time.perf_counter() - start)

    best_rust, best_py = sum(rust), sum(python)
    ratio = best_py / best_rust
    per = 1000 / len(roles)
    print(
        f"compile {len(roles)} roles to {args.format} ({size / len(roles) / 1024:.0f} KiB each), "
        f"best of {args.rounds} rounds per role:"
    )
    print(
        f"  Rust   (in the extension): {best_rust * 1000:8.1f} ms  ({best_rust * per:.2f} ms/role)"
    )
    print(f"  Python (Policy.compile)  : {best_py * 1000:8.1f} ms  ({best_py * per:.2f} ms/role)")
    print(f"  overhead Python/Rust     : {ratio:.3f}x (target <= 1.2x)")
    if args.max_ratio is not None and ratio > args.max_ratio:
        print(f"FAIL: {ratio:.3f}x > {args.max_ratio}x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
