"""The one :class:`sqlalchemy.MetaData` of ``marketing_db``.

Every schema module (``qz_outbound.schema``, ``sms.schema``, ``portal.schema``,
``agent.schema``) defines its tables on :data:`metadata` and imports nothing
but this module (and, for the agent's index, ``qz_outbound.schema``), so the
schema modules no longer import each other in a circle. :func:`full_metadata`
imports all of them: what the migrations and ``qz-outbound db check`` compare
the database with.

Tables are never created at run time: ``qz-outbound db upgrade`` does it
(``qz_outbound/migrations``, ``docs/migrations.md``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def full_metadata() -> sa.MetaData:
    """:data:`metadata` with every schema module's tables and indexes defined on it."""
    from qz_outbound import schema  # noqa: F401
    from qz_outbound.agent import schema as _agent  # noqa: F401
    from qz_outbound.portal import schema as _portal  # noqa: F401
    from qz_outbound.sms import schema as _sms  # noqa: F401

    return metadata
