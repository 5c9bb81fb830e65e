"""Command line for operators and the README's demo: ``qz-outbound <command>``.

    generate-datamart  write a demo data mart (SQLite file or PostgreSQL URL)
    segment            run segmentation for a cycle date outside Airflow (ops, benchmarks)
    report             write HQ's distribution report for a cycle date
    summary            print what a cycle did and where its outputs are (counts only)
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from qz_outbound import clock


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _url(value: str) -> str:
    """A bare file path means an SQLite file."""
    return value if "://" in value else f"sqlite:///{__import__('os').path.abspath(value)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qz-outbound", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate-datamart", help="write a demo data mart")
    g.add_argument("--url", type=_url, required=True, help="SQLAlchemy URL or SQLite file path")
    g.add_argument("--subscribers", type=int, default=100_000)
    g.add_argument("--as-of", type=_date, default=None, help="cycle date the data is made for (default today)")
    g.add_argument("--months", type=int, default=3, help="months of usage history (>= 3)")
    g.add_argument("--seed", type=int, default=2026)
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("segment", help="segment customers for a cycle date")
    s.add_argument("--datamart", type=_url, required=True)
    s.add_argument("--marketing", type=_url, required=True)
    s.add_argument("--date", type=_date, default=None)

    r = sub.add_parser("report", help="write the distribution report for a cycle date")
    r.add_argument("--marketing", type=_url, required=True)
    r.add_argument("--date", type=_date, default=None)

    m = sub.add_parser("summary", help="print what a cycle did")
    m.add_argument("--marketing", type=_url, required=True)
    m.add_argument("--date", type=_date, default=None)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from qz_outbound import db

    day = getattr(args, "date", None) or getattr(args, "as_of", None) or clock.today()
    if args.command == "generate-datamart":
        from qz_outbound.datamart.generate import generate

        counts = generate(db.make_engine(args.url), args.subscribers, day, seed=args.seed,
                          months=args.months, progress=not args.quiet)
        for table, n in counts.items():
            print(f"  {table:<22}{n:>12,}")
    elif args.command == "segment":
        from qz_outbound.segmentation import segment_customers

        n = segment_customers(db.make_engine(args.datamart), db.make_engine(args.marketing), day)
        print(f"segmented {n:,} customers for {day}")
    elif args.command == "report":
        from qz_outbound.reports import write_distribution_report

        rep = write_distribution_report(db.make_engine(args.marketing), day)
        print(rep.html_path)
    elif args.command == "summary":
        from qz_outbound.summary import print_summary

        return print_summary(db.make_engine(args.marketing), day)
    return 0


if __name__ == "__main__":
    sys.exit(main())
