"""Input tables of the data mart, exactly as ``datamart.md`` names them.

Only the demo generator and the tests create these; in production the data
mart belongs to the operator and is read-only to the project. Keys are
created as indexes after bulk loading (faster than loading into an index).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

MONEY = sa.Numeric(14, 2)
AMOUNT = sa.Numeric(14, 2)

dim_county = sa.Table(
    "dim_county", metadata,
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("county_name", sa.Text, nullable=False),
)
subscriber = sa.Table(
    "subscriber", metadata,
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("customer_name", sa.Text),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("open_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("market_segment", sa.String(16)),
    sa.Column("terminal_type", sa.String(8)),
    sa.Column("home_agent_id", sa.String(16)),
)
usage_monthly = sa.Table(
    "usage_monthly", metadata,
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("spend_yuan", MONEY, nullable=False),
    sa.Column("voice_minutes", AMOUNT, nullable=False),
    sa.Column("data_mb", AMOUNT, nullable=False),
    sa.Column("sms_count", sa.Integer, nullable=False),
)
bundle = sa.Table(
    "bundle", metadata,
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("bundle_type", sa.String(16), nullable=False),
    sa.Column("bundle_kind", sa.String(4), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date),
)
product_subscription = sa.Table(
    "product_subscription", metadata,
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date),
)
dnd_list = sa.Table(
    "dnd_list", metadata,
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("added_at", sa.DateTime, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
)
complaint = sa.Table(
    "complaint", metadata,
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("complaint_time", sa.DateTime, nullable=False),
    sa.Column("category", sa.String(20), nullable=False),
)
agent = sa.Table(
    "agent", metadata,
    sa.Column("agent_id", sa.String(16), nullable=False),
    sa.Column("agent_msisdn", sa.String(11), nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("outlet_name", sa.Text, nullable=False),
    sa.Column("outlet_type", sa.String(20), nullable=False),
    sa.Column("floor_area_m2", sa.Numeric(10, 1)),
    sa.Column("monthly_customers", sa.Integer),
)
recharge_event = sa.Table(
    "recharge_event", metadata,
    sa.Column("event_id", sa.String(24), nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("agent_id", sa.String(16), nullable=False),
    sa.Column("amount_yuan", MONEY, nullable=False),
    sa.Column("event_time", sa.DateTime, nullable=False),
)
order_event = sa.Table(
    "order_event", metadata,
    sa.Column("order_id", sa.String(24), nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("order_time", sa.DateTime, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("agent_id", sa.String(16)),
)

# (index name, table, columns, unique) — the keys of datamart.md plus what lookups need.
INDEXES = [
    ("ux_dim_county", "dim_county", "county_code", True),
    ("ux_subscriber", "subscriber", "msisdn", True),
    ("ux_usage_monthly", "usage_monthly", "msisdn, month", True),
    ("ix_bundle_msisdn", "bundle", "msisdn", False),
    ("ix_product_subscription_msisdn", "product_subscription", "msisdn", False),
    ("ix_dnd_list_msisdn", "dnd_list", "msisdn", False),
    ("ix_complaint_msisdn", "complaint", "msisdn", False),
    ("ux_agent", "agent", "agent_id", True),
    ("ux_recharge_event", "recharge_event", "event_id", True),
    ("ix_recharge_event_time", "recharge_event", "event_time", False),
    ("ux_order_event", "order_event", "order_id", True),
    ("ix_order_event_msisdn", "order_event", "msisdn", False),
]


def create_tables(engine: Engine, drop: bool = False) -> None:
    if drop:
        metadata.drop_all(engine)
    metadata.create_all(engine)


def create_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for name, table, cols, unique in INDEXES:
            conn.exec_driver_sql(
                f"create {'unique ' if unique else ''}index if not exists {name} on {table} ({cols})")
        conn.exec_driver_sql("analyze")
