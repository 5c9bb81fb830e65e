"""Command line for operators and the README's demo: ``qz-outbound <command>``.

    generate-datamart  write a demo data mart (SQLite file or PostgreSQL URL)
    segment            run segmentation for a cycle date outside Airflow (ops, benchmarks)
    report             write HQ's distribution report for a cycle date
    summary            print what a cycle did and where its outputs are (counts only)
    db upgrade         migrate marketing_db to the head revision (a pre-migration database is recognised)
    db check           exit 1 and list the differences when marketing_db does not match the models
    db current         print the revision marketing_db is at, and the head
    db backup          back marketing_db up (pg_dump custom format, or SQLite's online backup)
    db restore         restore such a backup (refuses a database with tables unless --force)

marketing_db is --marketing URL, else $QZ_MARKETING_DB_URL (docs/migrations.md, docs/runbook.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

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

    d = sub.add_parser("db", help="marketing_db: migrations, check, backup, restore")
    dsub = d.add_subparsers(dest="db_command", required=True)
    for name, text in (("upgrade", "migrate to the head revision"), ("check", "compare with the models"),
                       ("current", "the revision it is at"), ("backup", "write a backup file"),
                       ("restore", "restore a backup file")):
        p = dsub.add_parser(name, help=text)
        p.add_argument("--marketing", type=_url, default=None,
                       help="SQLAlchemy URL or SQLite file path (default $QZ_MARKETING_DB_URL)")
        p.add_argument("--conn", default=None, metavar="CONN_ID",
                       help="take the URL from this Airflow connection instead (e.g. marketing_db)")
        if name == "backup":
            p.add_argument("--out", type=Path, required=True, help="the backup file to write")
        if name == "restore":
            p.add_argument("--from", dest="source", type=Path, required=True, help="a file made by db backup")
            p.add_argument("--force", action="store_true", help="replace the tables of a database that has them")
            p.add_argument("--jobs", type=int, default=1, help="parallel pg_restore jobs (PostgreSQL)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from qz_outbound import db

    if args.command == "db":
        logging.getLogger("alembic").setLevel(logging.WARNING)
        return _db(args)
    day = getattr(args, "date", None) or getattr(args, "as_of", None) or clock.today()
    if args.command == "generate-datamart":
        from qz_outbound.dev.demo_datamart import generate

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


def _conn_url(conn_id: str) -> str:
    """The SQLAlchemy URL of an Airflow connection (AIRFLOW_CONN_<ID> or the metadata database)."""
    from airflow.models.connection import Connection

    return Connection.get_connection_from_secrets(conn_id).get_hook().get_uri()


def _db(args) -> int:
    import os

    from qz_outbound import backup, db, migrations

    url = args.marketing or (_conn_url(args.conn) if args.conn else os.environ.get("QZ_MARKETING_DB_URL"))
    if not url:
        print("qz-outbound db: give --marketing URL or --conn marketing_db, or set QZ_MARKETING_DB_URL",
              file=sys.stderr)
        return 2
    engine = db.make_engine(_url(url))
    where = engine.url.render_as_string(hide_password=True)
    try:
        if args.db_command == "upgrade":
            before = migrations.current(engine)
            pre = migrations.is_pre_migration(engine)
            after = migrations.upgrade(engine)
            note = " (made by the release before migrations: recognised, brought to the baseline)" if pre else ""
            print(f"{where}: {before or '(none)'} -> {after}{note}")
        elif args.db_command == "check":
            problems = migrations.check(engine)
            for problem in problems:
                print(f"  {problem}")
            print(f"{where}: " + (f"{len(problems)} difference(s) from the models; run `qz-outbound db upgrade`, "
                                  "or write a revision (docs/migrations.md)" if problems else
                                  f"matches the models at {migrations.head()}"))
            return 1 if problems else 0
        elif args.db_command == "current":
            at, head = migrations.current(engine), migrations.head()
            print(f"{where}: at {at or '(none: not under migrations)'}; head {head}"
                  + ("" if at == head else " -> run `qz-outbound db upgrade`"))
            return 0 if at == head else 1
        elif args.db_command == "backup":
            done = backup.backup(engine, args.out)
            print(f"{where}: backup {done.path} ({done.bytes / 1e6:,.1f} MB) in {done.seconds:,.1f} s")
        elif args.db_command == "restore":
            done = backup.restore(engine, args.source, force=args.force, jobs=args.jobs)
            at, head = migrations.current(engine), migrations.head()
            print(f"{where}: restored from {done.path} in {done.seconds:,.1f} s; at revision {at}"
                  + ("" if at == head else f", head is {head}: run `qz-outbound db upgrade`"))
    except (migrations.SchemaError, backup.BackupError) as exc:
        print(f"qz-outbound db {args.db_command}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
