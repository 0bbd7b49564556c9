"""Type stubs of the microseg Python bindings."""

import os
import sys
from typing import Any, Dict, List, Literal, Optional, Union

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:
    from typing_extensions import NotRequired, TypedDict

from ._errors import BackendError as BackendError
from ._errors import MicrosegError as MicrosegError
from ._errors import PolicyError as PolicyError
from ._errors import RequestError as RequestError

__version__: str

StrPath = Union[str, "os.PathLike[str]"]
PolicyFormat = Literal["toml", "json", "yaml", "yml"]
CompileFormat = Literal["nft", "nft-json", "ir", "firewalld", "sysctl"]
BackendName = Literal["nftables", "nft", "firewalld"]
PlanKind = Literal["unchanged", "incremental", "replace"]

class Diagnostic(TypedDict):
    """One problem found in a policy document (``file``, ``line``, ``col`` may be None)."""

    file: Optional[str]
    line: Optional[int]
    col: Optional[int]
    severity: Literal["error", "warning"]
    message: str

class Side(TypedDict):
    """One side of a decision (sender or receiver)."""

    verdict: Literal["accept", "drop", "reject"]
    roles: List[str]
    reasons: List[str]

# "from" is a keyword: the functional form.
QueryResult = TypedDict(
    "QueryResult",
    {
        "from": str,
        "to": str,
        "port": str,
        "verdict": Literal["allow", "deny"],
        "action": Literal["accept", "drop", "reject"],
        "loopback": bool,
        "sender": Optional[Side],
        "receiver": Optional[Side],
    },
)
"""The object ``microseg query --json`` prints."""

class Summary(TypedDict):
    """The object ``microseg check --json`` prints for a valid policy."""

    ok: bool
    table: str
    groups: int
    services: int
    roles: int
    flows: int
    managed_addresses: str
    diagnostics: List[Dict[str, Any]]

class Party(TypedDict):
    """A row/column of the matrix."""

    name: str
    kind: str

Cell = TypedDict("Cell", {"from": str, "to": str, "always": List[str], "sometimes": List[str]})
"""A cell of the matrix: ports permitted for every pair / for some pairs only."""

class Matrix(TypedDict):
    """The object ``microseg matrix --json`` prints (``cells`` row-major)."""

    parties: List[Party]
    cells: List[Cell]

Change = TypedDict(
    "Change",
    {
        "from": List[str],
        "from_label": str,
        "to": List[str],
        "to_label": str,
        "ports": List[str],
        "old": Literal["accept", "drop", "reject"],
        "new": Literal["accept", "drop", "reject"],
        "example": Dict[str, str],
    },
)
"""A block of connections whose verdict changes (``example``: src, dst, proto)."""

class Diff(TypedDict):
    """The exact semantic difference of two policies."""

    changes: List[Change]
    address_classes: int
    port_classes: int

class Target(TypedDict):
    """A compile target."""

    kind: Literal["role", "host"]
    value: str

class ApplyReport(TypedDict):
    """What ``Host.apply`` did (or, for a dry run, would do)."""

    backend: str
    owned: str
    target: str
    plan: PlanKind
    plan_text: str
    dry_run: bool
    applied: bool
    changed: bool
    lockout: Dict[str, Any]
    forced: bool
    persisted: Optional[str]
    persist_on_confirm: Optional[str]
    backup: Optional[str]
    notes: List[str]
    pending: Optional[Dict[str, Any]]
    sysctl: List[Dict[str, Any]]
    text: str

class StatusReport(TypedDict):
    """What is installed, drift and hit counters."""

    backend: str
    owned: str
    installed: bool
    last_event: Optional[str]
    target: Optional[str]
    source: Optional[str]
    at_ms: Optional[int]
    drift: Optional[List[Dict[str, str]]]
    drifted: bool
    hits: List[Dict[str, Any]]
    pending: Optional[Dict[str, Any]]
    text: str

class RemoveReport(TypedDict):
    """What ``Host.remove`` did (or would do)."""

    owned: str
    was_installed: bool
    changed: bool
    dry_run: bool
    boot_file: NotRequired[Optional[str]]
    text: str

class Policy:
    """A validated microseg policy (immutable)."""

    @classmethod
    def from_file(cls, path: StrPath) -> Policy:
        """Reads a policy file (format from the extension: .json, .yaml/.yml, else TOML).

        Raises PolicyError (invalid), OSError (unreadable)."""
    @classmethod
    def from_text(
        cls, text: str, format: PolicyFormat = "toml", filename: Optional[str] = None
    ) -> Policy:
        """Parses a policy document given as text; ``filename`` names it in diagnostics."""
    @classmethod
    def from_dict(cls, document: Dict[str, Any], filename: Optional[str] = None) -> Policy:
        """Validates a policy document given as a dict (through JSON; no line/col)."""
    @property
    def file(self) -> Optional[str]: ...
    @property
    def table(self) -> str: ...
    @property
    def roles(self) -> List[str]: ...
    @property
    def groups(self) -> List[str]: ...
    @property
    def services(self) -> List[str]: ...
    @property
    def flows(self) -> List[str]: ...
    def roles_of(self, address: str) -> List[str]:
        """The roles whose hosts include ``address``."""
    def to_dict(self) -> Dict[str, Any]:
        """The document as a dict."""
    def check(self) -> List[Diagnostic]:
        """The lint warnings (``microseg check``)."""
    def summary(self) -> Summary:
        """The object ``microseg check --json`` prints."""
    def compile(
        self,
        role: Optional[str] = None,
        host: Optional[str] = None,
        format: CompileFormat = "nft",
        optimize: bool = False,
    ) -> str:
        """What a backend would install (``microseg compile``); ``optimize``: the
        nftables formats in the optimised lowering. Releases the GIL."""
    def query(self, src: str, dst: str, port: str) -> QueryResult:
        """The decision for one new connection (``microseg query --json``)."""
    def matrix(self) -> Matrix:
        """Who may reach whom on which ports (``microseg matrix --json``)."""
    def matrix_text(self) -> str:
        """The matrix as ``microseg matrix`` prints it."""

class Host:
    """The local host's firewall, managed through a backend and a state directory."""

    def __init__(
        self,
        backend: BackendName = "nftables",
        state_dir: Optional[StrPath] = None,
        netns: Optional[str] = None,
        lock_timeout: float = 30.0,
        bus_address: Optional[str] = None,
    ) -> None: ...
    @property
    def backend(self) -> str: ...
    @property
    def state_dir(self) -> str: ...
    def target(
        self, policy: Policy, role: Optional[str] = None, host: Optional[str] = None
    ) -> Target:
        """The compile target; ``role="auto"`` picks this host's managed address."""
    def plan(
        self,
        policy: Policy,
        role: Optional[str] = None,
        host: Optional[str] = None,
        optimize: bool = False,
        lowering: Optional[str] = None,
    ) -> ApplyReport:
        """``apply(..., dry_run=True)``: the plan, nothing changed."""
    def apply(
        self,
        policy: Policy,
        role: Optional[str] = None,
        host: Optional[str] = None,
        dry_run: bool = False,
        force: bool = False,
        confirm_timeout: Optional[float] = None,
        persist: Union[bool, StrPath] = True,
        ssh_connection: Optional[str] = None,
        source: Optional[str] = None,
        sysctl_file: Union[bool, StrPath] = True,
        refresh: bool = False,
        optimize: bool = False,
        lowering: Optional[str] = None,
    ) -> ApplyReport:
        """Makes this host's firewall match the policy. Releases the GIL.
        ``lowering`` (nftables): ``"optimized"`` (the default) or ``"plain"``;
        ``optimize=True`` is the same as ``lowering="optimized"``."""
    def confirm(self, table: Optional[str] = None) -> Dict[str, Any]:
        """Keeps a change applied with ``confirm_timeout``."""
    def rollback(self, table: Optional[str] = None) -> Dict[str, Any]:
        """Restores the state saved before the last apply or remove."""
    def status(self, table: Optional[str] = None) -> StatusReport:
        """What is installed, drift, hit counters, pending change."""
    def remove(
        self,
        table: Optional[str] = None,
        dry_run: bool = False,
        persist: Union[bool, StrPath] = True,
    ) -> RemoveReport:
        """Removes what the policy installed, nothing else."""
    def installed_text(self, table: Optional[str] = None) -> Optional[str]:
        """nftables: ``nft -s list table inet TABLE``; firewalld: the owned objects as
        JSON; None when nothing is installed."""

def diff(old: Policy, new: Policy) -> Diff:
    """The exact semantic difference between two policies. Releases the GIL."""

def diff_text(old: Policy, new: Policy) -> str:
    """The difference as text, one line per change."""

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
