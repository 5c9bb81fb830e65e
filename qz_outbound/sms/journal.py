"""The sender's write-ahead journal: what went onto the wire, and what came back.

The outbox in the database says which messages a sender run claimed; it cannot
say cheaply which parts of them were already written to the SMSC when the run
died. The journal does: an append-only local file, one line per event, written
with ``os.write`` (no buffering in this process), so it survives ``kill -9``:

* ``W cid part seq`` is written *before* the part's submit_sm leaves;
* ``A cid part message_id`` when the SMSC accepted it;
* ``N cid part status`` when it refused it for now (throttled, queue full): safe to resend;
* ``R cid part status`` when it refused it for good.

A run that died is settled from its journal (:func:`read`): a claimed part
with no ``W`` was never sent and is sent again; a part whose last line is
``W`` may have reached the SMSC and is never resent (``in_doubt``, settled by
its receipt). The journal lives in the page cache, not on disk: it is trusted
only on the same machine and the same boot (``boot_id``); after a reboot every
claimed part counts as in doubt.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: never trust a journal across process lifetimes
        return f"unknown-{os.getpid()}"


def host_name() -> str:
    return socket.gethostname()


class Journal:
    """Append-only journal of one sender run."""

    def __init__(self, path: Path, token: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._pending: list[str] = []
        self.write_now([f"H\t{token}\t{boot_id()}\t{host_name()}\t{os.getpid()}"])

    def write_now(self, lines: list[str]) -> None:
        """Append lines before returning (used before a submit leaves)."""
        if self._pending:
            lines = self._pending + lines
            self._pending = []
        if lines:
            data = ("\n".join(lines) + "\n").encode()
            while data:
                written = os.write(self._fd, data)
                data = data[written:]

    def note(self, line: str) -> None:
        """Queue a line (responses); written with the next :meth:`write_now` or :meth:`flush`."""
        self._pending.append(line)

    def flush(self) -> None:
        self.write_now([])

    def close(self, remove: bool = False) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1
        if remove:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


@dataclass
class JournalState:
    """What a journal says about each part: its last event and the accepted message id."""

    trusted: bool
    last: dict[tuple[str, int], str] = field(default_factory=dict)      # (cid, part) -> W|A|N|R
    message_ids: dict[tuple[str, int], str] = field(default_factory=dict)
    statuses: dict[tuple[str, int], str] = field(default_factory=dict)


def read(path: str | Path, expected_boot_id: str, expected_host: str) -> JournalState:
    """Read a dead run's journal; ``trusted`` is False when it cannot be relied on."""
    path = Path(path)
    if expected_boot_id != boot_id() or expected_host != host_name() or not path.exists():
        return JournalState(trusted=False)
    state = JournalState(trusted=True)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # a torn last line: the event it describes did not complete
            fields = line.rstrip("\n").split("\t")
            kind = fields[0]
            if kind not in ("W", "A", "N", "R") or len(fields) < 3:
                continue
            key = (fields[1], int(fields[2]))
            state.last[key] = kind
            if kind == "A" and len(fields) > 3:
                state.message_ids[key] = fields[3]
            elif kind in ("N", "R") and len(fields) > 3:
                state.statuses[key] = fields[3]
    return state
