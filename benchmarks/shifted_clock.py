"""Run a benchmark with the project clock shifted but still ticking, for a machine whose real clock is
outside 08:00-20:00 Asia/Shanghai (the agent benchmark needs the sending window; ``QZ_FAKE_NOW``
would freeze the clock and with it every latency). ``clock.now()`` becomes real time + HOURS;
everything the run stamps (top-up written, SMS accepted) comes from that clock.

    .venv/bin/python benchmarks/shifted_clock.py ROOT HOURS BENCHMARK [ARGS...]
    .venv/bin/python benchmarks/shifted_clock.py . -8 benchmarks/bench_agent_latency.py --subscribers 50000

ROOT: the checkout whose code runs (another clone, e.g. main's, for a before/after comparison);
BENCHMARK: a path inside ROOT. Code that has ``QZ_CLOCK_OFFSET_SECONDS`` (qz_outbound/clock.py) needs no
wrapper: set it in the environment; this one is for checkouts from before it (before/after runs).
"""

from __future__ import annotations

import datetime as dt
import runpy
import sys
from pathlib import Path


def main() -> None:
    root, hours, bench, *args = sys.argv[1:]
    root = str(Path(root).resolve())
    sys.path.insert(0, root)
    from qz_outbound import clock

    real = clock.now
    clock.now = lambda: clock._frozen if clock._frozen is not None else real() + dt.timedelta(hours=float(hours))
    script = str(Path(root) / bench)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
