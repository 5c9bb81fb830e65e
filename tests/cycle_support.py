"""A small published cycle for tests: generated data mart, segmented, targeted, split per county."""

from __future__ import annotations

import datetime as dt

from qz_outbound import campaigns, counties, publish, schema, segmentation, targeting
from qz_outbound.dev.demo_datamart import generate


def published_cycle(engine, day: dt.date, subscribers: int, *, counties_to_publish=None, queue_sms=False):
    """Data mart and marketing_db in one database; returns the campaign library used."""
    generate(engine, subscribers, day, progress=False)
    schema.ensure_schema(engine)
    library = campaigns.load_library()
    segmentation.segment_customers(engine, engine, day)
    targeting.stage_extracts(engine, engine, day)
    targeting.build_target_list(engine, day, library)
    for county in counties_to_publish or counties.county_names():
        publish.publish_county(engine, day, county, library, queue_sms=queue_sms)
    return library


def engine_for_param(request, tmp_path, prefix: str):
    """An empty database for a test parametrized over "sqlite" and "postgresql"."""
    from qz_outbound import db

    if request.param == "sqlite":
        return db.make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    return db.make_engine(request.getfixturevalue("pg_database_factory")(prefix))
