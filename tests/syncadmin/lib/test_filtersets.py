"""ConsoleFilterSet: a value the database would refuse is a filter error; an invalid filter selects nothing."""

import pytest
from django.http import QueryDict

from messages.filtersets import MessageFilterSet
from messages.models import Message
from syncadmin.filtersets import AuditEntryFilterSet
from syncadmin.models import AuditEntry
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("zone", "query"),
    [("Asia/Tokyo", "received_after=0001-01-01"), ("Pacific/Niue", "received_before=9999-12-31")],
)
def test_dates_that_cannot_be_expressed_in_utc_are_a_filter_error(settings, zone, query):
    # East of UTC, midnight of 1 January of year 1 is still year 0 in UTC (and the end of 9999 is
    # year 10000 west of it): SQLite's adapter raised OverflowError (a 500) before the base checked.
    settings.TIME_ZONE = zone
    MessageFactory()
    fs = MessageFilterSet(QueryDict(query), queryset=Message.objects.all())
    assert not fs.is_valid()
    assert "out of range" in fs.notice
    assert list(fs.selected) == []


def test_invalid_filter_selects_nothing_and_says_why():
    MessageFactory()
    fs = MessageFilterSet(QueryDict("state=Bogus&entity_key=a%00b"), queryset=Message.objects.all())
    assert list(fs.selected) == []
    assert fs.notice.startswith("Some filters are not valid:") and "state" in fs.notice and "entity_key" in fs.notice


def test_valid_and_unbound_filtersets_select_as_before():
    m = MessageFactory(entity_key="K-1")
    MessageFactory(entity_key="K-2")
    assert list(MessageFilterSet(QueryDict("entity_key=K-1"), queryset=Message.objects.all()).selected) == [m]
    assert MessageFilterSet(None, queryset=Message.objects.all()).selected.count() == 2
    assert MessageFilterSet(None, queryset=Message.objects.all()).notice == ""


def test_every_console_filterset_has_the_base():
    from reconciliation.filtersets import DiscrepancyFilterSet, ReconciliationRunFilterSet
    from syncadmin.filtersets import ConsoleFilterSet
    from terminals.filtersets import TerminalFilterSet

    for fs in (
        MessageFilterSet,
        AuditEntryFilterSet,
        TerminalFilterSet,
        DiscrepancyFilterSet,
        ReconciliationRunFilterSet,
    ):
        assert issubclass(fs, ConsoleFilterSet), fs
    assert AuditEntryFilterSet(QueryDict("actor=%00"), queryset=AuditEntry.objects.all()).notice
