"""The console's shared input rules (syncadmin/lib/validation.py)."""

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django import forms
from hypothesis import given
from hypothesis import strategies as st

from syncadmin.lib.validation import ID_MAX, IdListField, database_refuses, parse_id


@given(st.text(st.characters(exclude_categories=("Cs",))))
def test_parse_id_accepts_exactly_ascii_ids_in_range(text):
    ascii_number = re.fullmatch(r"[0-9]+", text) is not None
    expected = int(text) if ascii_number and len(text) < 30 and 1 <= int(text) <= ID_MAX else None
    assert parse_id(text) == expected


@pytest.mark.parametrize(
    "text", ["²", "①", "٣", "１２", "-1", "0", "+5", " 5", "5 ", str(2**63), "9" * 4301, "1e3", ""]
)
def test_parse_id_refuses_what_no_id_can_be(text):
    assert parse_id(text) is None


def test_parse_id_bounds():
    assert parse_id("1") == 1 and parse_id(str(ID_MAX)) == ID_MAX and parse_id(None) is None


@pytest.mark.parametrize(
    "value",
    [
        "a\x00b",
        2**63,
        -(2**63) - 1,
        10**30,
        float("inf"),
        float("nan"),
        Decimal("1e30"),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # before year 1 in UTC
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2))),  # after year 9999 in UTC
        datetime(2020, 1, 1),  # naive, with USE_TZ
        ["ok", "a\x00b"],
        slice(None, datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))),
    ],
)
def test_database_refuses(value):
    assert database_refuses(value)


@pytest.mark.parametrize(
    "value",
    ["", "any text ² ①", 0, -(2**63), 2**63 - 1, 1.5, Decimal("-3.2"), True, None, date(1, 1, 1),
     datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC), ["a", 1], slice(None, None)],
)  # fmt: skip
def test_database_takes(value):
    assert database_refuses(value) == ""


class _Ids(forms.Form):
    select = IdListField(required=False)


def test_id_list_field_parses_ids_and_refuses_the_rest():
    from django.http import QueryDict

    form = _Ids(QueryDict("select=3&select=9223372036854775807"))
    assert form.is_valid() and form.cleaned_data["select"] == [3, ID_MAX]
    for bad in ("²", str(10**30), "-1", "0", "1.5", "a\x00"):
        form = _Ids(QueryDict(f"select=3&select={bad}"))
        assert not form.is_valid() and "Not a valid id" in form.errors["select"][0]
    assert _Ids(QueryDict("")).is_valid()
