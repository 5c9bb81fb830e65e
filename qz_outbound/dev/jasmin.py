"""Provision a Jasmin 0.11.0 SMS gateway over its jCli console (telnet, 127.0.0.1).

Jasmin (started by ``scripts/services/start.sh``) is an SMPP server the project
did not write. :func:`provision` makes it a gateway in front of an upstream
SMSC (the development SMSC in tests): an SMPP user for our sender and
receiver, an upstream ``smppccm`` connector (``submit_throughput 0``: the
default is 1 msg/s), a default MT route to it and a default MO route back to
our user. Idempotent: what exists is replaced.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass


class JCliError(RuntimeError):
    pass


@dataclass(frozen=True)
class JasminPorts:
    smpp: int
    jcli: int
    admin_user: str
    admin_password: str

    @classmethod
    def from_env(cls) -> "JasminPorts":
        """The ports ``scripts/services/env.sh`` uses (same variables, same defaults)."""
        return cls(smpp=int(os.environ.get("QZ_JASMIN_SMPP_PORT", 2785)),
                   jcli=int(os.environ.get("QZ_JASMIN_JCLI_PORT", 8995)),
                   admin_user=os.environ.get("QZ_JASMIN_ADMIN_USER", "jcliadmin"),
                   admin_password=os.environ.get("QZ_JASMIN_ADMIN_PASSWORD", "jclipwd"))


class JCli:
    """A jCli session: send a line, read up to the next prompt."""

    PROMPTS = (b"jcli : ", b"> ")

    def __init__(self, port: int, user: str, password: str, host: str = "127.0.0.1", timeout: float = 15):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        # Jasmin prints "Authentication required." and waits for the user name
        # (its "Username: " prompt only follows telnet negotiation we do not do)
        self._read_until((b"Username: ", b"required.\r\r\r\n\r\r\r\n", b"required.\r\n\r\n"))
        self.sock.sendall(user.encode() + b"\r\n")
        self._read_until((b"Password: ",))
        self.sock.sendall(password.encode() + b"\r\n")
        out = self._read_until(self.PROMPTS + (b"Username: ",))
        if "Incorrect" in out or out.rstrip().endswith("Username:"):
            raise JCliError("jCli authentication failed")

    def _read_until(self, tokens) -> str:
        buf = b""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            if any(buf.endswith(t) for t in tokens):
                return _clean(buf)
        raise JCliError(f"jCli did not answer (got {_clean(buf)[-200:]!r})")

    def run(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self._read_until(self.PROMPTS)

    def block(self, command: str, settings: dict) -> str:
        """An ``-a``/``-u`` command and its key/value lines, closed with ``ok``."""
        out = self.run(command)
        for key, value in settings.items():
            out += self.run(f"{key} {value}")
        result = self.run("ok")
        if "Successfully" not in result:
            self.run("ko")
            raise JCliError(f"{command} failed: {(out + result)[-400:]}")
        return result

    def close(self) -> None:
        try:
            self.sock.sendall(b"quit\r\n")
        except OSError:
            pass
        self.sock.close()


def _clean(data: bytes) -> str:
    data = re.sub(rb"\xff[\xfb-\xfe].", b"", data)          # telnet negotiation
    data = re.sub(rb"\x1b(\[[0-9;]*[A-Za-z]|c)", b"", data)  # terminal escapes
    return data.decode("utf-8", errors="replace").replace("\r", "")


def provision(ports: JasminPorts, *, upstream_host: str, upstream_port: int, upstream_system_id: str = "jasmin",
              upstream_password: str = "jasmin", user: str = "qzsms", password: str = "qzpw",
              bind_timeout: float = 60) -> str:
    """Point Jasmin at an upstream SMSC and give our ESME a user with MT and MO routes.

    Each call makes a connector with a new id (and removes the earlier ones):
    re-creating one under the same id left a stale queue consumer in Jasmin
    0.11.0 that swallowed the next submit (``'NoneType' object has no attribute
    'get'``, seen here). Returns the connector id.
    """
    connector = f"qzup{int(time.time() * 1000) % 10**9}"
    remove_connectors(ports)
    cli = JCli(ports.jcli, ports.admin_user, ports.admin_password)
    try:
        cli.block("smppccm -a", {
            "cid": connector, "host": upstream_host, "port": upstream_port,
            "username": upstream_system_id, "password": upstream_password,
            "bind": "transceiver", "submit_throughput": 0,
            "con_loss_retry": "yes", "con_loss_delay": 1, "con_fail_retry": "yes", "con_fail_delay": 1,
        })
        cli.run(f"smppccm -1 {connector}")
        if "qzgroup" not in cli.run("group -l"):
            cli.block("group -a", {"gid": "qzgroup"})
        if user in cli.run("user -l"):
            cli.run(f"user -r {user}")
        cli.block("user -a", {"username": user, "password": password, "uid": user, "gid": "qzgroup"})
        cli.run("mtrouter -f")
        cli.block("mtrouter -a", {"type": "DefaultRoute", "connector": f"smppc({connector})", "rate": "0.00"})
        cli.run("morouter -f")
        cli.block("morouter -a", {"type": "DefaultRoute", "connector": f"smpps({user})"})
        cli.run("persist")
        deadline = time.monotonic() + bind_timeout
        while True:
            listing = cli.run("smppccm -l")
            line = next((ln for ln in listing.splitlines() if connector in ln), "")
            if "BOUND_TRX" in line:
                return connector
            if time.monotonic() > deadline:
                raise JCliError(f"upstream connector never bound: {line.strip()!r}")
            time.sleep(0.2)
    finally:
        cli.close()


def remove_connectors(ports: JasminPorts) -> None:
    """Stop and remove the upstream connectors :func:`provision` made (they retry their upstream forever)."""
    cli = JCli(ports.jcli, ports.admin_user, ports.admin_password)
    try:
        for old in re.findall(r"^#(qzup\d+)\s", cli.run("smppccm -l"), flags=re.M):
            cli.run(f"smppccm -0 {old}")
            cli.run(f"smppccm -r {old}")
    finally:
        cli.close()
