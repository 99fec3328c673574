"""The API's rate windows (``api_call_count``): one count per caller and window, shared by every process."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from syncadmin.models import ApiCallWindow
from syncadmin.services import api_call_count, api_call_windows_purge

T0 = datetime(2026, 12, 4, 10, 0, 7, tzinfo=UTC)


@pytest.mark.django_db
def test_calls_are_counted_per_caller_and_window():
    assert api_call_count(caller="token:1", period_seconds=60, now=T0) == (1, 53.0)
    assert api_call_count(caller="token:1", period_seconds=60, now=T0 + timedelta(seconds=50))[0] == 2
    assert api_call_count(caller="token:2", period_seconds=60, now=T0)[0] == 1  # another caller
    assert api_call_count(caller="token:1", period_seconds=60, now=T0 + timedelta(seconds=53)) == (1, 60.0)  # next
    assert ApiCallWindow.objects.count() == 3


@pytest.mark.django_db
def test_old_windows_are_purged_and_current_ones_kept():
    api_call_count(caller="token:1", period_seconds=60, now=T0 - timedelta(days=2))
    api_call_count(caller="token:1", period_seconds=60, now=T0)
    assert api_call_windows_purge(now=T0) == 1
    assert list(ApiCallWindow.objects.values_list("calls", flat=True)) == [1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_are_each_counted_once():
    """Six threads, each on its own connection, 40 calls each in one window: the window holds 240, and
    each call saw a distinct count (what a limit of N lets through is exactly N calls)."""
    seen, errors = [], []

    def caller():
        try:
            for _ in range(40):
                seen.append(api_call_count(caller="token:race", period_seconds=3600, now=T0)[0])
        except Exception as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(seen) == list(range(1, 241))
    assert ApiCallWindow.objects.get(caller="token:race").calls == 240
