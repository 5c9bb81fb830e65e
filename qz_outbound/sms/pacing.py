"""A sender's own pace on top of the account's shared rate limiter.

The limiter (:mod:`qz_outbound.sms.limiter`) holds the contracted rate across every sender of the
account. On top of it each sender slows itself down when the SMSC answers ESME_RTHROTTLED or
ESME_RMSGQFUL: it halves its pace (never below 2% of the contract) and pauses a little longer on each
throttle of a streak, then recovers additively (+10% of the contract per quiet second). The sender
asks :meth:`Pacer.burst_size` before each burst and tells :meth:`Pacer.wrote` what it wrote.
"""

from __future__ import annotations

import time


class Pacer:
    def __init__(self, rate: float, burst_seconds: float):
        self.rate = rate
        self.burst_seconds = burst_seconds
        self.pace = rate
        self.pace_next = 0.0        # when slowed: the monotonic time the next burst may leave
        self.pause_until = 0.0      # after a throttle: nothing leaves before this
        self.throttle_streak = 0
        self.last_throttle = 0.0
        self.pace_updated = time.monotonic()

    @property
    def slowed(self) -> bool:
        return self.pace < self.rate

    def slow_down(self) -> None:
        """A throttle answer: halve the pace and pause (longer for a streak of throttles)."""
        now = time.monotonic()
        self.throttle_streak = self.throttle_streak + 1 if now - self.last_throttle < 1.0 else 1
        self.last_throttle = now
        self.pace = max(self.rate * 0.02, self.pace * 0.5)
        self.pace_updated = now
        self.pause_until = max(self.pause_until, now + min(2.0, 0.05 * 2 ** min(self.throttle_streak, 6)))

    def recover(self, now: float) -> None:
        """Additive recovery after a quiet second: +10% of the contract per second."""
        if self.pace < self.rate and now - self.last_throttle > 1.0:
            self.pace = min(self.rate, self.pace + self.rate * 0.1 * (now - self.pace_updated))
        self.pace_updated = now

    def burst_size(self, now: float, want: int) -> int:
        """How many of ``want`` parts may be written now (0: wait)."""
        if now < self.pause_until:
            return 0
        if self.slowed:
            if now < self.pace_next:
                return 0
            want = min(want, max(1, int(self.pace * self.burst_seconds)))
        return want

    def wrote(self, n: int) -> None:
        """``n`` parts were written: when slowed, the next burst waits its share of the pace."""
        if self.slowed and n:
            self.pace_next = time.monotonic() + n / self.pace

    def ready_at(self, now: float) -> float:
        """When parts waiting in the queue may go (for the idle wait on the socket)."""
        return max(now, self.pause_until, self.pace_next if self.slowed else now)
