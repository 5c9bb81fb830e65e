"""One rate limiter per SMSC account, shared by every sender process on the host.

County tasks run in parallel (one Airflow task per county, each with its own
bind) but the contracted rate belongs to the account. The limiter's state lives
in a small file (``<state_dir>/limiter-<account>.bin``) mapped into every
sender and guarded by ``flock``, so the rate holds across processes, task
retries and re-runs on the machine (LocalExecutor: all tasks run on one host).
With workers on several hosts, use one Airflow pool slot per account instead
(docs/sms-delivery.md).

Two rules, both checked under the lock:

* pacing: a grant of ``n`` submits moves the next allowed time on by
  ``n * (1 + margin) / rate`` (bursts of at most ``rate * burst_seconds``);
* a hard cap: the file keeps the grant time of each of the last ``rate``
  submits (stamped after their write) and a new one is granted, and written
  under the same lock, only if the submit ``rate`` places back left at least one
  second ago. So no second ever holds more than ``rate`` submits on the wire,
  whatever the processes do and however late one of them runs.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for all processes
of a boot). The window 08:00-20:00 uses the project clock, not this one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import os
import struct
import time
from pathlib import Path

_MAGIC = b"QZRL0001"
_HEADER = struct.Struct("<8sdQdQ")   # magic, rate, capacity, next_at, index
_SLOT = struct.Struct("<d")


class RateLimiter:
    """Grants submits for one account at no more than ``rate`` per second."""

    def __init__(self, path: Path, rate: float, margin: float = 0.005, burst_seconds: float = 0.02):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.path = Path(path)
        self.rate = float(rate)
        self.capacity = max(1, int(math.floor(rate)))       # the hard cap per second
        self.interval = (1.0 + margin) / rate
        self.burst = max(1, int(rate * burst_seconds))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        size = _HEADER.size + self.capacity * _SLOT.size
        with self._locked():
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
            self._map = mmap.mmap(self._fd, size)
            magic, old_rate, old_cap, _next, _idx = _HEADER.unpack_from(self._map, 0)
            if magic != _MAGIC:
                self._reset(conservative=False)
            elif old_rate != self.rate or old_cap != self.capacity:
                self._reset(conservative=True)

    @classmethod
    def for_account(cls, state_dir: Path, key: str, rate: float, margin: float, burst_seconds: float) -> "RateLimiter":
        name = hashlib.sha1(key.encode()).hexdigest()[:16]
        return cls(Path(state_dir) / f"limiter-{name}.bin", rate, margin, burst_seconds)

    def _locked(self):
        fd = self._fd

        class _Lock:
            def __enter__(self_inner):
                fcntl.flock(fd, fcntl.LOCK_EX)

            def __exit__(self_inner, *exc):
                fcntl.flock(fd, fcntl.LOCK_UN)

        return _Lock()

    def _reset(self, conservative: bool) -> None:
        # The contract changed while senders may have been sending: assume the last
        # second was used in full, so a change never lets a burst above either rate through.
        now = time.monotonic()
        stamp = now if conservative else now - 3600.0
        _HEADER.pack_into(self._map, 0, _MAGIC, self.rate, self.capacity, now if conservative else 0.0, 0)
        for i in range(self.capacity):
            _SLOT.pack_into(self._map, _HEADER.size + i * _SLOT.size, stamp)

    def try_acquire(self, n: int, dry_run: bool = False) -> tuple[int, float]:
        """Take up to ``n`` submits now: ``(granted, 0.0)``, or ``(0, seconds to wait)``.

        ``dry_run`` only tells how many could be had now, taking nothing.
        """
        with self.grant(n, dry_run=dry_run) as (granted, wait):
            return granted, wait

    @contextlib.contextmanager
    def grant(self, n: int, dry_run: bool = False):
        """Yield ``(granted, wait)`` holding the account's lock; write the granted submits inside.

        The slots are stamped with the time the block *ends*, after the write: a
        submit checked against the stamp of the one ``rate`` places back, which
        was taken after that one had left, is a full second after it on the wire
        too, however late this process runs. Writes of all senders of the
        account are therefore in order, each a few microseconds long.
        """
        n = max(1, min(n, self.burst, self.capacity))
        with self._locked():
            _magic, _rate, _cap, next_at, index = _HEADER.unpack_from(self._map, 0)
            now = time.monotonic()
            # the stamp of the submit `capacity` places before the last one we would take
            oldest = _SLOT.unpack_from(self._map, _HEADER.size + ((index + n - 1) % self.capacity) * _SLOT.size)[0]
            ready_at = max(next_at, oldest + 1.0)
            if ready_at > now:
                yield 0, ready_at - now
                return
            if dry_run:
                yield n, 0.0
                return
            try:
                yield n, 0.0
            finally:
                done = time.monotonic()
                for k in range(n):
                    _SLOT.pack_into(self._map, _HEADER.size + ((index + k) % self.capacity) * _SLOT.size, done)
                # Schedule from the theoretical time, not from when we woke up: waking
                # up to 0.1 s late must not lower the rate (the hard cap still holds
                # while catching up). Idle for longer: start afresh.
                base = next_at if now - next_at < 0.1 else now
                _HEADER.pack_into(self._map, 0, _MAGIC, self.rate, self.capacity, base + n * self.interval,
                                  index + n)

    def close(self) -> None:
        try:
            self._map.close()
        finally:
            os.close(self._fd)


def max_in_any_second(times) -> int:
    """The most events within any one second (sliding window): what a contracted rate bounds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best
