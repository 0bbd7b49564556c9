"""microseg: one declarative microsegmentation policy -> least-privilege host firewalls.

>>> import microseg
>>> policy = microseg.Policy.from_file("examples/three-tier.toml")  # doctest: +SKIP
>>> policy.query("10.10.1.10", "10.10.1.20", "tcp/8080")["verdict"]  # doctest: +SKIP
'allow'

The Rust crates do the work (``microseg._native``); results are those of the
``microseg`` command line.
"""

from __future__ import annotations

from ._errors import BackendError, MicrosegError, PolicyError, RequestError
from ._native import Host, Policy, __version__, diff, diff_text

__all__ = [
    "BackendError",
    "Host",
    "MicrosegError",
    "Policy",
    "PolicyError",
    "RequestError",
    "__version__",
    "diff",
    "diff_text",
]
