"""The confirm timer: ``python -m microseg._timer --backend B --table T
[--netns NS] [--bus ADDRESS] --state-dir DIR --id ID``.

``Host.apply(..., confirm_timeout=N)`` starts this program detached; it waits
for the deadline and restores the state saved before the apply unless
``Host.confirm()`` ran in time. Progress goes to ``DIR/timer.log``.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ._native import _run_timer


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the timer; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m microseg._timer")
    parser.add_argument("--backend", default="nftables")
    parser.add_argument("--table", required=True)
    parser.add_argument("--netns")
    parser.add_argument("--bus")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--id", required=True)
    args = parser.parse_args(argv)
    try:
        outcome = _run_timer(
            args.backend, args.table, args.state_dir, args.id, args.netns, args.bus
        )
    except Exception as e:  # reported in the timer log (stderr)
        print(f"microseg confirm timer: {e}", file=sys.stderr)
        return 1
    print(f"microseg confirm timer: {outcome}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
