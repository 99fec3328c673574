"""CSV exports (syncadmin/lib/exports.py): no cell a spreadsheet runs as a formula; nothing streams before the query."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from syncadmin.lib.exports import csv_cell, csv_response


@pytest.mark.parametrize(
    "value",
    [
        "=1+1",
        '=HYPERLINK("http://x","y")',
        "+1",
        "-1",
        "@SUM(1)",
        "\t=1+1",
        "\tplain",
        "\r=1+1",
        "\rplain",
        "\x00x",
        "  =1+1",  # a spreadsheet trimming spaces on import would see the formula
        "\n-2+3",
        "\u00a0@SUM(1)",
        "=",
    ],
)
def test_formula_cells_are_neutralised(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value",
    ["m-1", "SKU 12", "1", "a=b", "a-b", "x@y.z", "", " plain", "'quoted", "ValueError: price -1 is negative", "²"],
)
def test_ordinary_text_is_unchanged(value):
    assert csv_cell(value) == value


def test_numbers_dates_and_none():
    # Numbers the database returns stay numbers (Python writes them as -?[0-9]+, never a formula).
    assert csv_cell(-5) == -5 and csv_cell(0) == 0 and csv_cell(Decimal("-1.5")) == Decimal("-1.5")
    assert csv_cell(None) == ""
    assert csv_cell(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00+00:00"


def _body(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_response_quotes_every_field_and_neutralises_every_cell():
    response = csv_response(header=["id", "key"], rows=iter([(1, "=1+1"), (-2, "a;=b,c")]), filename="x.csv")
    raw = b"".join(response.streaming_content).decode()
    # Every field quoted: a ";" or "," inside a value never starts a cell in a spreadsheet splitting on it.
    assert raw.splitlines() == ['"id","key"', '"1","\'=1+1"', '"-2","a;=b,c"']
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'


def test_response_runs_the_query_before_answering():
    def failing_rows():
        raise RuntimeError("the query failed")
        yield  # pragma: no cover

    # The error comes out of csv_response itself (an error page), not from the stream after a 200 went out.
    with pytest.raises(RuntimeError):
        csv_response(header=["id"], rows=failing_rows(), filename="x.csv")


def test_empty_export_has_its_header():
    assert _body(csv_response(header=["id", "key"], rows=iter([]), filename="x.csv")) == [["id", "key"]]
