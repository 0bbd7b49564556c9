"""Listener and probe for the test namespaces (run inside one with ``ip netns exec``).

``python netprobe.py listen SECONDS PORT...``: accepts TCP connections on every
port (0.0.0.0) and closes them at once, for at most SECONDS.

``python netprobe.py probe TIMEOUT ADDR:PORT...``: tries a TCP connection to each
target (in parallel, each bounded by TIMEOUT seconds) and prints one JSON object
``{"ADDR:PORT": "open" | "refused" | "timeout" | "error: ..."}``.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List


def listen(seconds: float, ports: List[int]) -> None:
    sel = selectors.DefaultSelector()
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("listening", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            try:
                conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                conn.close()
            except OSError:
                pass


def probe_one(target: str, timeout: float) -> str:
    addr, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((addr, int(port)), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as e:
        return f"error: {e}"


def probe(timeout: float, targets: List[str]) -> Dict[str, str]:
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda t: probe_one(t, timeout), targets))
    return dict(zip(targets, results))


def main(argv: List[str]) -> int:
    if len(argv) >= 2 and argv[0] == "listen":
        listen(float(argv[1]), [int(p) for p in argv[2:]])
        return 0
    if len(argv) >= 2 and argv[0] == "probe":
        print(json.dumps(probe(float(argv[1]), argv[2:])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
