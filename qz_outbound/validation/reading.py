"""Reading the cycle's target list for the checks (``include/sql/target_audit.sql`` does the joins):
five columns a row, codes as categoricals; PostgreSQL streams it with COPY."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, db, schema

# an opt-out recorded this shortly before the list was built may not have been visible to it;
# the sender checks opt-outs again before every submit, so validation does not count it
OPT_OUT_GRACE = dt.timedelta(minutes=5)
ROW_COLUMNS = ("msisdn", "county_code", "campaign_code", "snapshot_county_code", "excluded_reason")
CHUNK_ROWS = 500_000


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Code columns (few distinct values) as categoricals: a few bytes a row instead of a string."""
    for col in ROW_COLUMNS[1:]:
        values = frame[col]
        frame[col] = values.astype(pd.CategoricalDtype(pd.Index(values.dropna().unique(), dtype=object)))
    frame["msisdn"] = frame["msisdn"].astype(object)
    return frame


def _concat(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    if not chunks:
        return _compact(pd.DataFrame({c: pd.Series([], dtype=object) for c in ROW_COLUMNS}))
    from pandas.api.types import union_categoricals

    frame = pd.DataFrame({"msisdn": pd.concat([c["msisdn"] for c in chunks], ignore_index=True)})
    for col in ROW_COLUMNS[1:]:
        frame[col] = union_categoricals([c[col] for c in chunks]) if len(chunks) > 1 else chunks[0][col].values
    return frame


class _CopyReader(io.RawIOBase):
    """A file over PostgreSQL's COPY output, so pandas parses it as it arrives."""

    def __init__(self, copy):
        self._rows = iter(copy)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = bytes(next(self._rows))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _list_built_at(marketing: Engine, cycle_date: dt.date) -> dt.datetime | None:
    """When the cycle's list was built (the start of its ``target`` stage), if recorded."""
    t = schema.mkt_cycle_stage
    with marketing.connect() as conn:
        row = conn.execute(sa.select(t.c.finished_at, t.c.seconds)
                           .where(t.c.cycle_date == cycle_date, t.c.stage == "target")).first()
    if row is None:
        return None
    finished = row.finished_at
    if isinstance(finished, str):
        finished = dt.datetime.fromisoformat(finished)
    return finished - dt.timedelta(seconds=float(row.seconds))


def read_target_rows(marketing: Engine, cycle_date: dt.date) -> pd.DataFrame:
    """The list as the row checks see it (``target_audit.sql``): number, county, campaign, snapshot
    county and excluded_reason per row; codes as categoricals. PostgreSQL streams it with COPY."""
    built = _list_built_at(marketing, cycle_date)
    cutoff = built - OPT_OUT_GRACE if built is not None else None
    dialect = marketing.dialect.name
    sql = db.render_sql("target_audit.sql", dialect, query="rows", opt_out_cutoff=cutoff is not None)
    chunks: list[pd.DataFrame] = []
    with marketing.connect() as conn:
        dbapi = conn.connection.driver_connection
        if dialect == "postgresql":
            params: dict[str, Any] = {"d": cycle_date}
            if cutoff is not None:
                params["opted_out_before"] = cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=clock.SHANGHAI)
            compiled = str(sa.text(sql).compile(dialect=marketing.dialect))
            with dbapi.cursor() as cur:
                with cur.copy(f"copy ({compiled}) to stdout with (format csv, header true, null '\\N')",
                              params) as copy:
                    reader = io.BufferedReader(_CopyReader(copy), buffer_size=1 << 20)
                    for chunk in pd.read_csv(reader, dtype=str, na_values=["\\N"], keep_default_na=False,
                                             chunksize=CHUNK_ROWS):
                        chunks.append(_compact(chunk))
        else:
            params = {"d": cycle_date.isoformat()}
            if cutoff is not None:  # stored as SQLAlchemy stores DateTime on SQLite: local wall time as text
                processor = sa.DateTime(timezone=True).dialect_impl(marketing.dialect).bind_processor(marketing.dialect)
                params["opted_out_before"] = processor(cutoff) if processor else cutoff
            cur = dbapi.cursor()
            try:
                cur.execute(sql, params)
                while part := cur.fetchmany(CHUNK_ROWS):
                    chunks.append(_compact(pd.DataFrame.from_records(part, columns=list(ROW_COLUMNS))))
            finally:
                cur.close()
    frame = _concat(chunks)
    # one set of categories for both county columns, so they compare row by row
    counties = frame["county_code"].cat.categories.union(frame["snapshot_county_code"].cat.categories)
    for col in ("county_code", "snapshot_county_code"):
        frame[col] = frame[col].cat.set_categories(counties)
    # a missing number must fail the format check (GX skips nulls in column checks)
    frame["msisdn"] = frame["msisdn"].fillna("")
    return frame


def read_control_counts(marketing: Engine, cycle_date: dt.date) -> pd.DataFrame:
    """Per campaign: customers chosen and held out as control (aggregated in the database)."""
    sql = db.render_sql("target_audit.sql", marketing.dialect.name, query="control", opt_out_cutoff=False)
    with marketing.connect() as conn:
        return pd.read_sql(sa.text(sql), conn, params={"d": cycle_date.isoformat()})
