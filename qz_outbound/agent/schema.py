"""The agent channel's tables in ``marketing_db`` (on the project's one metadata).

``mkt_agent_event``
    one row per recharge event, ever (key ``event_id``): what the data mart said about it when it
    was read, and what became of it. ``state``: ``pending`` (read, not decided; waits for the
    sending window) -> ``done`` with an ``outcome``: ``recommended`` or the reason it was not
    (docs/agent-channel.md lists them). Nothing is dropped: every event read stays here.
``mkt_personal_data``
    个性数据导入: per campaign and customer, the fields that fill the campaign's texts.
``mkt_agent_offer``
    the products one recommendation listed (key ``contact_id`` x ``product_rank``, rank 1 is the
    one the customer's SMS carries and ``mkt_contact`` names): commission pays an order of any of them.
``stg_agent_order``, ``mkt_agent_commission``
    a settlement month's orders, and the conversions paid (key ``order_id``; a contact is paid once).
``mkt_agent_grade``
    a month's score and grade per shop.

Also an index on the shared ``mkt_contact``: at most one agent recommendation per customer and
day, so two overlapping runs can never both contact a customer.
"""

from __future__ import annotations

import sqlalchemy as sa
from qz_outbound.metadata import metadata
from qz_outbound.schema import mkt_contact

_TS = sa.DateTime(timezone=True)

mkt_agent_event = sa.Table(
    "mkt_agent_event", metadata,
    sa.Column("event_id", sa.String(24), primary_key=True),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("agent_id", sa.String(16), nullable=False),
    sa.Column("amount_yuan", sa.Numeric(10, 2), nullable=False),
    sa.Column("event_time", sa.DateTime, nullable=False),       # Asia/Shanghai local, as in the data mart
    sa.Column("copies", sa.Integer, nullable=False),            # rows with this id in the data mart (>1: duplicates)
    # what the data mart said when the event was read
    sa.Column("agent_known", sa.SmallInteger, nullable=False),
    sa.Column("agent_msisdn", sa.String(11)),
    sa.Column("outlet_name", sa.Text),
    sa.Column("agent_county", sa.String(6)),
    sa.Column("customer_status", sa.String(16)),                # null: not a subscriber
    sa.Column("customer_county", sa.String(6)),
    sa.Column("dnd", sa.SmallInteger, nullable=False),
    sa.Column("complaint", sa.SmallInteger, nullable=False),
    sa.Column("ingested_at", _TS, nullable=False),
    # what became of it
    sa.Column("state", sa.String(12), nullable=False),          # pending | done
    sa.Column("claim_token", sa.String(32)),
    sa.Column("decided_at", _TS),
    sa.Column("outcome", sa.String(24)),                        # recommended | a reason
    sa.Column("campaign_code", sa.String(16)),
    sa.Column("product_code", sa.String(32)),
    sa.Column("contact_id", sa.String(32)),
)
sa.Index("ix_mkt_agent_event_pending", mkt_agent_event.c.state, mkt_agent_event.c.event_time)
sa.Index("ix_mkt_agent_event_time", mkt_agent_event.c.event_time)

mkt_personal_data = sa.Table(
    "mkt_personal_data", metadata,
    sa.Column("campaign_code", sa.String(16), primary_key=True),
    sa.Column("msisdn", sa.String(11), primary_key=True),
    sa.Column("fields", sa.Text, nullable=False),               # JSON object: field -> text
    sa.Column("source_file", sa.Text, nullable=False),
    sa.Column("row_no", sa.Integer, nullable=False),
    sa.Column("imported_at", _TS, nullable=False),
)

mkt_agent_offer = sa.Table(
    "mkt_agent_offer", metadata,
    sa.Column("contact_id", sa.String(32), primary_key=True),   # the recommendation (mkt_contact, channel agent)
    sa.Column("product_rank", sa.SmallInteger, primary_key=True),   # 1 = first pitched, the customer's SMS
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("expected_value", sa.Float),                      # yuan per offer (mkt_offer_value); null: none measured
)
sa.Index("ix_mkt_agent_offer_product", mkt_agent_offer.c.product_code, mkt_agent_offer.c.contact_id)

stg_agent_order = sa.Table(
    "stg_agent_order", metadata,
    sa.Column("order_id", sa.String(24), primary_key=True),
    sa.Column("month", sa.Date, nullable=False),                # the settlement month it was read for
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("order_time", sa.DateTime, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("agent_id", sa.String(16)),
)
sa.Index("ix_stg_agent_order", stg_agent_order.c.msisdn, stg_agent_order.c.product_code)

mkt_agent_commission = sa.Table(
    "mkt_agent_commission", metadata,
    sa.Column("order_id", sa.String(24), primary_key=True),     # an order is paid once
    sa.Column("contact_id", sa.String(32), nullable=False, unique=True),   # a recommendation is paid once
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("agent_id", sa.String(16), nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("msisdn", sa.String(11), nullable=False),
    sa.Column("campaign_code", sa.String(16), nullable=False),
    sa.Column("product_code", sa.String(32), nullable=False),
    sa.Column("recommended_at", _TS, nullable=False),
    sa.Column("order_time", sa.DateTime, nullable=False),
    sa.Column("commission_yuan", sa.Numeric(10, 2), nullable=False),
    sa.Column("note", sa.Text),
)
sa.Index("ix_mkt_agent_commission_month", mkt_agent_commission.c.month, mkt_agent_commission.c.agent_id)

mkt_agent_grade = sa.Table(
    "mkt_agent_grade", metadata,
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("agent_id", sa.String(16), primary_key=True),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("outlet_type", sa.String(20), nullable=False),
    sa.Column("customers_served", sa.Integer, nullable=False),
    sa.Column("floor_area_m2", sa.Float),
    sa.Column("conversions", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("grade", sa.String(1), nullable=False),
)

# One agent recommendation per customer and day (the frequency rules allow fewer still); the
# database enforces it, so overlapping runs that decide at the same moment cannot both contact.
ux_mkt_contact_agent = sa.Index(
    "ux_mkt_contact_agent", mkt_contact.c.cycle_date, mkt_contact.c.msisdn, unique=True,
    sqlite_where=mkt_contact.c.channel == "agent",
    postgresql_where=mkt_contact.c.channel == "agent",
)

