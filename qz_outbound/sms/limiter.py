"""One rate limiter per SMSC account, shared by every sender of the account.

County tasks run in parallel (one Airflow task per county, each with its own
bind), and the agent channel sends on the same account, but the contracted rate
belongs to the account. :func:`open_limiter` picks where the shared state lives:

* ``QZ_SMS_LIMITER_URL`` set (``redis://...``): in Redis (:class:`RedisRateLimiter`),
  so every sender on every worker host shares it (docker-compose.yml: the
  stack's Redis, database 1). It fails closed: a sender that cannot reach
  Redis stops sending (:class:`LimiterUnavailable`), it never sends unthrottled.
* otherwise: in a small file (``<state_dir>/limiter-<account>.bin``) mapped into
  every sender and guarded by ``flock`` (:class:`RateLimiter`): one host only,
  the embedded default. Under the CeleryExecutor (workers may be on several
  hosts) :func:`open_limiter` refuses to run without the Redis URL.

Two rules, both checked under the lock:

* pacing: a grant of ``n`` submits moves the next allowed time on by
  ``n * (1 + margin) / rate`` (bursts of at most ``rate * burst_seconds``);
* a hard cap: the file keeps the grant time of each of the last ``rate``
  submits (stamped after their write) and a new one is granted, and written
  under the same lock, only if the submit ``rate`` places back left at least one
  second ago. So no second ever holds more than ``rate`` submits on the wire,
  whatever the processes do and however late one of them runs.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for all processes
of a boot) for the file, Redis's ``TIME`` (one clock for all hosts) for Redis.
The window 08:00-20:00 uses the project clock, not these.
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

LIMITER_URL_ENV = "QZ_SMS_LIMITER_URL"
GIVE_UP_ENV = "QZ_SMS_LIMITER_GIVE_UP"   # seconds a sender waits for a lost Redis before it stops

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


class LimiterUnavailable(RuntimeError):
    """The shared limiter cannot be reached: nothing may be sent (fail closed)."""


# Grant: the same two rules as the file, in Redis, atomically (a script runs alone).
# A grant stamps its slots provisionally `lease` seconds ahead (the submits are not on the wire
# yet) and the commit after the write re-stamps them with the time it ends. A new grant checks
# every slot it would take, so each submit leaves a full second after the one `capacity` places
# before it has left, whatever the order the senders' writes end in; a sender that dies between
# grant and commit only blocks its slots for `lease` seconds more (stricter, never looser).
_GRANT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, cap, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n, dry, lease, hold = tonumber(ARGV[4]), ARGV[5] == '1', tonumber(ARGV[6]), tonumber(ARGV[7])
local key = KEYS[1]
local st = redis.call('HMGET', key, 'rate', 'cap', 'next_at', 'index')
local next_at, index = 0, 0
if not st[1] then
  redis.call('HSET', key, 'rate', ARGV[1], 'cap', ARGV[2], 'next_at', 0, 'index', 0)
elseif tonumber(st[1]) ~= rate or tonumber(st[2]) ~= cap then
  -- the contract changed while senders may have been sending: assume the last second was full
  redis.call('DEL', key)
  redis.call('HSET', key, 'rate', ARGV[1], 'cap', ARGV[2], 'next_at', string.format('%.6f', now), 'index', 0)
  for i = 0, cap - 1 do redis.call('HSET', key, 's' .. i, string.format('%.6f', now)) end
  next_at = now
else
  next_at, index = tonumber(st[3]), tonumber(st[4])
end
local ready = next_at
for k = 0, n - 1 do
  local s = tonumber(redis.call('HGET', key, 's' .. ((index + k) % cap)) or '0')
  if s + hold > ready then ready = s + hold end
end
if ready > now then return {0, string.format('%.6f', ready - now), -1, ''} end
if dry then return {n, '0', -1, ''} end
local provisional = string.format('%.6f', now + lease)
for k = 0, n - 1 do redis.call('HSET', key, 's' .. ((index + k) % cap), provisional) end
local base = now
if now - next_at < 0.1 then base = next_at end
redis.call('HSET', key, 'next_at', string.format('%.6f', base + n * interval), 'index', index + n)
return {n, '0', index, provisional}
"""

# Commit: the granted slots, still holding this grant's provisional stamp, get the time the write
# ended. A slot stamped otherwise was taken again after the lease ran out: left as it is.
_COMMIT_LUA = """
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local cap, first, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for k = 0, n - 1 do
  local f = 's' .. ((first + k) % cap)
  if redis.call('HGET', KEYS[1], f) == ARGV[4] then redis.call('HSET', KEYS[1], f, now) end
end
return 1
"""


class RedisRateLimiter:
    """:class:`RateLimiter`'s rules with the state in Redis: one rate for all hosts.

    Every call that cannot reach Redis is retried for ``give_up`` seconds, then
    raises :class:`LimiterUnavailable` (the sender stops; the task's retry resumes).
    """

    def __init__(self, url: str, key: str, rate: float, margin: float = 0.005, burst_seconds: float = 0.02,
                 give_up: float = 15.0, lease: float = 5.0, guard: float = 0.02):
        import redis

        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = max(1, int(math.floor(rate)))
        self.interval = (1.0 + margin) / rate
        self.burst = max(1, int(rate * burst_seconds))
        self.give_up = give_up
        self.lease = lease
        # A submit leaves 1 s + guard after the one `capacity` places before it: the SMSC counts by
        # its own arrival times, which jitter with the network and its scheduling (a few ms).
        self.hold = 1.0 + guard
        self.key = "qz:sms:rate:" + hashlib.sha1(key.encode()).hexdigest()[:16]
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._grant = self._redis.register_script(_GRANT_LUA)
        self._commit = self._redis.register_script(_COMMIT_LUA)
        self._call(self._redis.ping)   # fail at the start, before anything is claimed

    def _call(self, fn, *args, **kwargs):
        deadline = time.monotonic() + self.give_up
        pause = 0.1
        while True:
            try:
                return fn(*args, **kwargs)
            except self._errors as exc:
                if time.monotonic() >= deadline:
                    raise LimiterUnavailable(
                        f"the shared SMS rate limiter (Redis, {LIMITER_URL_ENV}) is unreachable for "
                        f"{self.give_up:.0f} s: sending stops ({type(exc).__name__}: {exc})") from exc
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _run_grant(self, n: int, dry_run: bool):
        granted, wait, first, provisional = self._call(self._grant, keys=[self.key], args=[
            repr(self.rate), self.capacity, repr(self.interval), n, "1" if dry_run else "0", repr(self.lease),
            repr(self.hold)])
        return int(granted), float(wait), int(first), provisional

    def try_acquire(self, n: int, dry_run: bool = False) -> tuple[int, float]:
        with self.grant(n, dry_run=dry_run) as (granted, wait):
            return granted, wait

    @contextlib.contextmanager
    def grant(self, n: int, dry_run: bool = False):
        """Yield ``(granted, wait)``; write the granted submits inside, the commit follows."""
        n = max(1, min(n, self.burst, self.capacity))
        granted, wait, first, provisional = self._run_grant(n, dry_run)
        if not granted or dry_run:
            yield granted, wait
            return
        try:
            yield granted, 0.0
        finally:
            self._call(self._commit, keys=[self.key], args=[self.capacity, first, granted, provisional])

    def close(self) -> None:
        self._redis.close()


def open_limiter(state_dir: Path, key: str, rate: float, margin: float, burst_seconds: float):
    """The account's limiter: in Redis when ``QZ_SMS_LIMITER_URL`` is set, else the host's file.

    Under the CeleryExecutor the file would hold the rate on one host only, so
    it is refused there: a clear error instead of a rate exceeded.
    """
    url = os.environ.get(LIMITER_URL_ENV, "").strip()
    if url:
        give_up = float(os.environ.get(GIVE_UP_ENV) or 15.0)
        return RedisRateLimiter(url, key, rate, margin, burst_seconds, give_up=give_up)
    if "celery" in os.environ.get("AIRFLOW__CORE__EXECUTOR", "").lower():
        raise LimiterUnavailable(
            f"AIRFLOW__CORE__EXECUTOR is CeleryExecutor but {LIMITER_URL_ENV} is not set: a file limiter "
            "holds the SMSC rate on one host only; set it to the stack's Redis (docker-compose.yml)")
    return RateLimiter.for_account(state_dir, key, rate, margin, burst_seconds)


def max_in_any_second(times) -> int:
    """The most events within any one second (sliding window): what a contracted rate bounds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best
