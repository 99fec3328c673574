from datetime import UTC, datetime, timedelta

import pytest

from messages.models import Message
from syncadmin.pagination import keyset_page
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
