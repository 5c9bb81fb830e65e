"""Re-run the audit of a cycle by hand: ``python -m qz_outbound.validation --marketing … --date …``."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys

from qz_outbound import db
from qz_outbound.validation.audit import audit_target_list


def main(argv: list[str] | None = None) -> int:
    """Re-run the audit of a cycle by hand (after a fix): ``python -m qz_outbound.validation``."""
    parser = argparse.ArgumentParser(prog="python -m qz_outbound.validation", description=main.__doc__)
    parser.add_argument("--marketing", required=True, help="SQLAlchemy URL of marketing_db (or an SQLite file path)")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="cycle date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from qz_outbound.campaigns import load_library

    url = args.marketing if "://" in args.marketing else f"sqlite:///{os.path.abspath(args.marketing)}"
    report = audit_target_list(db.make_engine(url), args.date, load_library())
    print(report.summary())
    return 0 if report.success else (2 if report.publishable else 1)


if __name__ == "__main__":
    sys.exit(main())
