"""CSV exports of the console: cells no spreadsheet runs as a formula, streamed only once every check passed.

Every CSV the console writes goes through ``csv_response`` (and so ``csv_cell``).

Formula injection (OWASP, "CSV Injection"): terminals control most exported text (MessageId,
EntityKey, error texts...), and a spreadsheet runs a cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return as a formula (``=HYPERLINK(...)`` sends data away). Such a
text cell is written with a leading single quote, which spreadsheets take as "this is text".
Also neutralised: a leading NUL (OWASP ASVS 1.2.10 lists it), and text whose first character
after leading whitespace is ``=``, ``+``, ``-`` or ``@`` (a spreadsheet that trims spaces on
import would otherwise see the formula). Every field is quoted (``QUOTE_ALL``), so a ``;`` or
``,`` inside a value can never start a new cell in a spreadsheet that splits on another separator.

Numbers stay numbers: an int, float or Decimal from the database (ids, attempts, the terminal's
``Sequence``, which may be negative) is written as Python writes it, ``-?[0-9]+``, which no
spreadsheet evaluates; quoting it would turn a number column into text. Text that looks like a
number (a MessageId ``-1``) is text and gets the quote.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal

from django.http import StreamingHttpResponse

# A text cell starting with one of these is neutralised (OWASP's list, plus NUL from ASVS).
FORMULA_FIRST = frozenset("=+-@\t\r\x00")
# ... and so is one whose first character after leading whitespace is one of these.
FORMULA_AFTER_SPACE = frozenset("=+-@")


def csv_cell(value):
    """One exported value as a CSV cell that a spreadsheet shows and never evaluates."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    if isinstance(value, datetime | date | time):
        value = value.isoformat()
    text = str(value)
    if text[:1] in FORMULA_FIRST or text.lstrip()[:1] in FORMULA_AFTER_SPACE:
        return "'" + text
    return text


class _Echo:
    """A file-like object whose write() returns the line, so csv.writer can feed a generator."""

    def write(self, value):
        return value


_END = object()


def csv_response(*, header: Sequence[str], rows: Iterable[Sequence], filename: str) -> StreamingHttpResponse:
    """Stream ``header`` then ``rows`` as a CSV attachment; memory stays flat for any number of rows.

    Validate every input before calling this. The first row is read here, before the response
    exists: a query that fails then fails while the answer can still be an error page, not a
    200 cut off mid-file (the status and headers are sent with the first line of a stream).
    """
    rows = iter(rows)
    first = next(rows, _END)
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL)

    def lines():
        yield writer.writerow([csv_cell(h) for h in header])
        if first is _END:
            return
        yield writer.writerow([csv_cell(v) for v in first])
        for row in rows:
            yield writer.writerow([csv_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
