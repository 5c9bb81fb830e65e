"""Is the day's work ready? What a stage deadline checks (the ``cycle_deadlines`` DAG at 08:00).

HQ needs to know by 08:00, when the call centres start and SMS may leave, whether every county's
lists are out. "Ready" is read from what the cycle leaves behind, not from Airflow's task states:
the stages recorded in ``mkt_cycle_stage`` (segmentation, each county's publish) and each county's
call list files on disk. So the check also holds for a day re-run by hand outside Airflow.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import call_lists, counties, schema


def lists_missing(marketing: Engine, cycle_date: dt.date) -> list[str]:
    """What is not ready for ``cycle_date``, in words ("publish 350582 晋江市"); empty when all is."""
    t = schema.mkt_cycle_stage
    if not sa.inspect(marketing).has_table(t.name):
        done: set[str] = set()
    else:
        with marketing.connect() as conn:
            done = set(conn.execute(sa.select(t.c.stage).where(t.c.cycle_date == cycle_date)).scalars())
    missing = [] if "segment" in done else ["segmentation"]
    for code in counties.county_names():
        if f"publish:{code}" not in done:
            missing.append(f"publish {counties.label(code)}")
        stem = call_lists.file_stem(cycle_date, code)
        folder = call_lists.list_dir(cycle_date, code)
        if not all((folder / f"{stem}.{ext}").is_file() for ext in ("csv", "xlsx")):
            missing.append(f"call list {counties.label(code)}")
    return missing
