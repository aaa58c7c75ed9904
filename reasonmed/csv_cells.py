"""CSV a spreadsheet opens as data: every CSV the project writes goes through ``write_csv``.

Question ids and texts come from files written by others, model names from pipeline files, reasons from
models: a cell ``=HYPERLINK(...)`` or ``=cmd|' /C calc'!A0`` would be a live formula in Excel, LibreOffice
or Google Sheets. OWASP's rule (CSV injection): a text cell that starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return gets a leading ``'``, which spreadsheets show as text and do not display. Also
covered: those characters after leading white space, and their full-width forms (``＝`` ...), which some
spreadsheets read alike.

Only text is changed. A value the database returns as a number (``-3``, ``-0.25``) is written as the
number it is, so numeric columns stay numeric; a text cell that merely looks like a number (``"-3"`` in a
text column) is prefixed like any other text. Reading the CSV back with a program, strip one leading
``'`` from text cells to get the stored text.
"""

from __future__ import annotations

import csv
import decimal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_LEADING_SPACE = " \t\r\n\u3000"


def neutralise(value: Any) -> Any:
    """The cell to write for ``value``: numbers and None as they are, any other value as text, prefixed
    with ``'`` when a spreadsheet would read it as a formula."""
    if value is None or isinstance(value, bool | int | float | decimal.Decimal):
        return value
    text = value if isinstance(value, str) else str(value)
    if text[:1] in FORMULA_START or text.lstrip(_LEADING_SPACE)[:1] in FORMULA_START:
        return "'" + text
    return text


def write_csv(f: TextIO, fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A header and ``rows`` (missing keys empty), every cell through ``neutralise``."""
    writer = csv.writer(f)
    writer.writerow([neutralise(name) for name in fieldnames])
    for row in rows:
        writer.writerow([neutralise(row.get(name)) for name in fieldnames])
