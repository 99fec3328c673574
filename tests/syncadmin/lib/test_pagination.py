import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messages.models import Message
from syncadmin.lib.pagination import _decode, _encode, keyset_page
from syncadmin.lib.validation import ID_MAX, database_refuses
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db
SORTS = {"received_at": "received_at", "sequence": "sequence"}


def walk(sort, per_page):
    seen, after = [], None
    while True:
        page = keyset_page(
            Message.objects.all(), sort=sort, allowed=SORTS, default="-received_at", per_page=per_page, after=after
        )
        seen += [m.pk for m in page.rows]
        if not page.next_cursor:
            return seen
        after = page.next_cursor


@pytest.mark.parametrize("sort", ["-received_at", "received_at", "sequence", "-sequence"])
@pytest.mark.parametrize("per_page", [1, 3, 7])
def test_walk_matches_full_ordering(sort, per_page):
    now = datetime.now(UTC)
    for i in range(11):
        MessageFactory(received_at=now - timedelta(seconds=i % 4), sequence=i % 3)
    field = sort.lstrip("-")
    expected = list(Message.objects.order_by(sort, ("-" if sort.startswith("-") else "") + "pk"))
    assert walk(sort, per_page) == [m.pk for m in expected]
    assert field in SORTS


def test_unknown_sort_falls_back_to_default():
    MessageFactory()
    page = keyset_page(Message.objects.all(), sort="payload", allowed=SORTS, default="-received_at", per_page=5)
    assert page.sort == "-received_at"


def test_empty_table():
    page = keyset_page(Message.objects.all(), sort=None, allowed=SORTS, default="-received_at", per_page=5)
    assert page.rows == [] and page.next_cursor is None and page.is_first


# --- hostile cursors: a notice and the first page, never a query error ---------------------------------

import json  # noqa: E402

TEXT_SORTS = {"entity_key": "entity_key", "sequence": "sequence", "received_at": "received_at"}


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("entity_key", _cursor(["a\x00b", 5])),  # PostgreSQL: DataError (text cannot hold NUL)
        ("sequence", _cursor([float("inf"), 5])),  # OverflowError in int()
        ("sequence", _cursor([2**63, 5])),  # SQLite: OverflowError binding it
        ("sequence", _cursor([1.5, 5])),  # was silently truncated to 1
        ("entity_key", _cursor(["a", 2**63])),  # no id can be that
        ("entity_key", _cursor(["a", True])),
        ("entity_key", _cursor("12")),  # unpacked as two characters
        ("entity_key", _cursor(["a", 5, 6])),
        ("entity_key", _cursor([5, 5])),  # _encode writes a string for a text field
        ("received_at", _cursor(["0001-01-01T00:00:00+01:00", 5])),  # before year 1 in UTC
        ("received_at", _cursor(["2020-01-01T00:00:00", 5])),  # no zone: _encode always writes one
        ("received_at", _cursor([None, 5])),
        ("entity_key", base64.urlsafe_b64encode(b"[" * 1500 + b"]" * 1500).decode()),  # RecursionError in json
        ("entity_key", "A" * 5000),  # longer than any cursor _encode writes
        ("entity_key", "!!!"),
        ("entity_key", "é"),
    ],
)
@pytest.mark.parametrize("direction", ["after", "before"])
def test_hostile_cursor_shows_first_page_with_notice(sort, cursor, direction):
    first = MessageFactory(entity_key="k")
    page = keyset_page(
        Message.objects.all(), sort=sort, allowed=TEXT_SORTS, default="-received_at", per_page=5, **{direction: cursor}
    )
    assert page.notice == "that page link is not valid any more; showing the first page"
    assert [m.pk for m in page.rows] == [first.pk] and page.is_first


@given(
    cursor=st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
    | st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode())
)
@settings(max_examples=200, deadline=None)
def test_decode_returns_a_storable_value_or_value_error(cursor):
    for field in ("entity_key", "sequence", "received_at"):
        try:
            value, pk = _decode(cursor, Message._meta.get_field(field))
        except ValueError:
            continue
        assert database_refuses(value) == "" and 1 <= pk <= ID_MAX


@given(
    key=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=128),
    seq=st.integers(-(2**63), 2**63 - 1),
    pk=st.integers(1, ID_MAX),
)
@settings(max_examples=100, deadline=None)
def test_what_encode_writes_decode_reads_back(key, seq, pk):
    assert _decode(_encode(key, pk), Message._meta.get_field("entity_key")) == (key, pk)
    assert _decode(_encode(seq, pk), Message._meta.get_field("sequence")) == (seq, pk)
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert _decode(_encode(at, pk), Message._meta.get_field("received_at")) == (at, pk)


def test_unknown_sort_says_so():
    MessageFactory()
    page = keyset_page(Message.objects.all(), sort="--received_at", allowed=SORTS, default="-received_at", per_page=5)
    assert page.sort == "-received_at" and "cannot be sorted" in page.notice
    assert keyset_page(Message.objects.all(), sort=None, allowed=SORTS, default="-received_at", per_page=5).notice == ""
