"""Command line: ``python -m qz_outbound.sms {send,receive} ...`` (the development SMSC: ``python -m qz_outbound.dev.smsc``).

The SMSC account is the JSON of an Airflow connection (``--smsc`` or the
``AIRFLOW_CONN_SMSC`` variable), the database an SQLAlchemy URL (``--db`` or
``QZ_MARKETING_DB_URL``). Output is counts only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading


def _settings(args):
    from qz_outbound.sms.settings import settings_from_connection

    raw = args.smsc or os.environ.get("AIRFLOW_CONN_SMSC")
    if not raw:
        sys.exit("give --smsc '{\"host\":...,\"port\":...,\"login\":...,\"password\":...,\"extra\":{...}}' "
                 "or set AIRFLOW_CONN_SMSC")
    return settings_from_connection(json.loads(raw))


def _engine(args):
    from qz_outbound import migrations
    from qz_outbound.db import make_engine

    url = args.db or os.environ.get("QZ_MARKETING_DB_URL")
    if not url:
        sys.exit("give --db URL or set QZ_MARKETING_DB_URL")
    engine = make_engine(url, hide_parameters=True)   # numbers never reach a traceback in a log
    try:   # the receiver never creates tables: `qz-outbound db upgrade` does
        migrations.require_head(engine)
    except migrations.SchemaError as exc:
        sys.exit(f"qz_outbound.sms: {exc}")
    return engine


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m qz_outbound.sms")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="cmd", required=True)
    send = sub.add_parser("send", help="send one county's queued SMS")
    send.add_argument("--db")
    send.add_argument("--smsc")
    send.add_argument("--cycle-date", required=True, type=dt.date.fromisoformat)
    send.add_argument("--county", required=True)
    send.add_argument("--max-messages", type=int)
    recv = sub.add_parser("receive", help="run the receipts/replies receiver until SIGTERM")
    recv.add_argument("--db")
    recv.add_argument("--smsc")
    recv.add_argument("--in-doubt-grace", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.cmd == "send":
        from qz_outbound.sms.sender import send_batch

        result = send_batch(_engine(args), args.cycle_date, args.county, _settings(args),
                            max_messages=args.max_messages)
        print(json.dumps(result.as_dict()), flush=True)
        return 0
    if args.cmd == "receive":
        from qz_outbound.sms.receiver import run_receiver

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        totals = run_receiver(_engine(args), _settings(args), stop=stop,
                              on_bound=lambda: print("receiver bound", flush=True),
                              in_doubt_grace=args.in_doubt_grace)
        print(json.dumps(totals), flush=True)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
