# microseg test connection plugin: run tasks inside a network namespace of this machine.
# MIT OR Apache-2.0

"""Connection plugin ``netns``: a test host is a network namespace of the controller."""

from __future__ import annotations

DOCUMENTATION = """
    name: netns
    short_description: Run tasks inside a Linux network namespace of the controller
    description:
        - Every command runs as C(ip netns exec NAME /bin/sh -c CMD) on the controller, so a
          test host is a network namespace with its own interfaces, addresses and firewall.
        - Namespaces share the controller's filesystem, so files are copied locally.
        - The controller's SSH session variables (C(SSH_CONNECTION), C(SSH_CLIENT)) are not
          passed on, as they describe a session to the machine, not to the namespace.
        - Needs root (CAP_SYS_ADMIN for C(ip netns exec)).
    author: microseg contributors
    options:
        netns:
            description: The network namespace (as listed by C(ip netns list)).
            required: true
            type: str
            vars:
                - name: ansible_netns
"""

import os
import shutil
import subprocess
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

#: Environment variables that must not reach the namespace.
_DROPPED_ENV = ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "SSH_AUTH_SOCK")


class Connection(ConnectionBase):
    """Runs commands in a network namespace with ``ip netns exec``."""

    transport = "netns"
    has_pipelining = True

    def _connect(self) -> Connection:
        if not self._connected:  # type: ignore[has-type]
            netns = self.get_option("netns")
            if not os.path.exists(os.path.join("/run/netns", netns)):
                raise AnsibleConnectionFailure(f"network namespace {netns!r} does not exist")
            display.vvv(f"NETNS: {netns}", host=self._play_context.remote_addr)
            self._connected = True
        return self

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        netns = self.get_option("netns")
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        display.vvv(f"EXEC in {netns}: {cmd}", host=self._play_context.remote_addr)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "/bin/sh", "-c", cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        shutil.copyfile(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        shutil.copyfile(in_path, out_path)

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        self._connected = False


__all__: t.List[str] = ["Connection"]
