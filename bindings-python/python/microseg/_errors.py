"""The exceptions raised by microseg (the native module raises these classes)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class MicrosegError(Exception):
    """Base class of every microseg error."""


class PolicyError(MicrosegError):
    """The policy document is invalid.

    ``str(err)`` is the located messages, one per line, exactly as the
    ``microseg`` command prints them (``policy.toml:3:7: error: ...``).
    ``err.diagnostics`` lists them as dicts with the keys ``file``, ``line``,
    ``col`` (each may be ``None``), ``severity`` and ``message``.
    """

    def __init__(self, message: str, diagnostics: Optional[List[Dict[str, Any]]] = None) -> None:
        super().__init__(message)
        self.diagnostics: List[Dict[str, Any]] = list(diagnostics or [])

    @property
    def errors(self) -> List[Dict[str, Any]]:
        """The diagnostics of severity ``error``."""
        return [d for d in self.diagnostics if d.get("severity") == "error"]

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.diagnostics))


class RequestError(MicrosegError, ValueError):
    """A request that does not fit the policy or the API (an unknown role, a
    malformed address or port, an unknown format)."""


class BackendError(MicrosegError):
    """A firewall backend failed or refused. ``command`` and ``stderr`` are
    set when a command failed."""

    def __init__(
        self,
        message: str,
        command: Optional[str] = None,
        stderr: Optional[str] = None,
        kind: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.stderr = stderr
        self.kind = kind

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.command, self.stderr, self.kind))


__all__ = ["BackendError", "MicrosegError", "PolicyError", "RequestError"]
