"""``python -m qz_outbound.agent``: the agent channel's operator commands.

    import-personal   个性数据导入: a CSV/XLSX of numbers and fields for a campaign (errors in Chinese)
    settle            a month's commission statements and outlet grades
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qz_outbound.agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("import-personal", help="个性数据导入")
    p.add_argument("--db", default=os.environ.get("QZ_MARKETING_DB_URL"), help="marketing_db URL")
    p.add_argument("--campaign", required=True)
    p.add_argument("file")
    s = sub.add_parser("settle", help="commission statements and outlet grades of a month")
    s.add_argument("--db", default=os.environ.get("QZ_MARKETING_DB_URL"), help="marketing_db URL")
    s.add_argument("--datamart", required=True, help="data mart URL")
    s.add_argument("--month", required=True, help="YYYY-MM")
    args = parser.parse_args(argv)
    if not args.db:
        parser.error("--db (or QZ_MARKETING_DB_URL) is required")

    from qz_outbound import campaigns, db

    library = campaigns.load_library()
    marketing = db.make_engine(args.db)
    if args.command == "import-personal":
        from qz_outbound.agent.personal_data import import_personal_data

        by_code = {c.code: c for c in library}
        if args.campaign not in by_code:
            parser.error(f"no campaign {args.campaign} in the library")
        result = import_personal_data(marketing, by_code[args.campaign], args.file)
        for err in result.errors:
            print(err)
        print(f"共{result.rows}行，导入{result.imported}行，有误{result.as_dict()['rejected']}行")
        return 0 if not result.errors else 1
    from qz_outbound.agent import commission, grading

    month = dt.date.fromisoformat(args.month + "-01")
    datamart = db.make_engine(args.datamart)
    out = commission.settle_month(datamart, marketing, month, library)
    out["grades"] = grading.grade_month(datamart, marketing, month)
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
