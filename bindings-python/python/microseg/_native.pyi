"""Type stubs of the extension module (the public names are documented in the package)."""

from typing import Optional

from . import Host as Host
from . import Policy as Policy
from . import __version__ as __version__
from . import diff as diff
from . import diff_text as diff_text

def _bench_compile(
    policy: Policy,
    role: Optional[str] = None,
    host: Optional[str] = None,
    format: str = "nft-json",
    iterations: int = 1,
) -> float:
    """Compiles and renders ``iterations`` times in Rust; returns the seconds."""

def _run_timer(
    backend: str,
    table: str,
    state_dir: str,
    id: str,
    netns: Optional[str] = None,
    bus: Optional[str] = None,
) -> str:
    """The confirm timer's body; returns the outcome."""

class _PrivateFirewalld:
    """Test support: firewalld on a private bus in a throw-away network namespace."""

    def __init__(self) -> None: ...
    @property
    def bus_address(self) -> str: ...
    @property
    def netns(self) -> str: ...
    def close(self) -> None: ...
