"""The sender's own pace (qz_outbound.sms.pacing): slower on a throttle, back to the contract when quiet."""

from __future__ import annotations

import time

from qz_outbound.sms.pacing import Pacer


def test_a_throttle_halves_the_pace_and_pauses_longer_in_a_streak():
    p = Pacer(rate=100, burst_seconds=0.1)
    now = time.monotonic()
    assert not p.slowed and p.burst_size(now, 40) == 40          # at the contract: the limiter decides
    p.slow_down()
    first_pause = p.pause_until - time.monotonic()
    assert p.pace == 50 and p.slowed and 0 < first_pause <= 0.1 + 0.01
    assert p.burst_size(time.monotonic(), 40) == 0                # paused
    p.slow_down()
    assert p.pace == 25 and p.pause_until - time.monotonic() > first_pause
    for _ in range(20):
        p.slow_down()
    assert p.pace == 2                                            # never below 2% of the contract
    assert p.pause_until - time.monotonic() <= 2.0


def test_slowed_bursts_are_capped_and_spaced_then_the_pace_recovers():
    p = Pacer(rate=100, burst_seconds=0.1)
    p.slow_down()
    after_pause = p.pause_until + 0.001
    assert p.burst_size(after_pause, 40) == 5                     # 50/s × 0.1 s
    p.wrote(5)
    assert p.pace_next > time.monotonic() and p.burst_size(time.monotonic(), 40) == 0
    assert p.ready_at(time.monotonic()) >= p.pace_next
    quiet = p.last_throttle + 1.5                                 # a quiet second and a half later
    p.pace_updated = p.last_throttle + 1.0
    p.recover(quiet)
    assert 54 < p.pace < 56                                       # +10% of the contract per second
    p.recover(quiet + 10)
    assert p.pace == 100 and not p.slowed
