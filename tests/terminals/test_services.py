"""terminals/services.py: the heartbeat's future-time rule and the WS-Security nonce store."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from terminals import services
from terminals.models import Terminal, UsedNonce
from tests.factories import TerminalFactory

pytestmark = pytest.mark.django_db


def test_a_terminal_time_far_in_the_future_is_refused_and_nothing_is_stored(terminal, settings):
    assert settings.SYNC_MAX_CLOCK_SKEW_SECONDS == 900
    for future in [datetime(9999, 12, 31, tzinfo=UTC), timezone.now() + timedelta(seconds=960)]:
        with pytest.raises(services.InvalidHeartbeat, match="more than 900 s ahead of the hub's clock"):
            services.terminal_heartbeat(terminal=terminal, app_version="9", local_backlog=3, terminal_time=future)
    stored = Terminal.objects.get(pk=terminal.pk)
    assert (stored.last_heartbeat_at, stored.app_version, stored.clock_skew_seconds) == (None, "", None)


def test_a_terminal_clock_a_little_fast_is_recorded_as_skew(terminal, settings):
    ahead = timezone.now() + timedelta(seconds=600)
    now = services.terminal_heartbeat(terminal=terminal, app_version="9", local_backlog=0, terminal_time=ahead)
    stored = Terminal.objects.get(pk=terminal.pk)
    assert stored.clock_skew_seconds == (ahead - now).total_seconds()
    settings.SYNC_MAX_CLOCK_SKEW_SECONDS = 60
    with pytest.raises(services.InvalidHeartbeat, match="more than 60 s ahead"):
        services.terminal_heartbeat(terminal=terminal, app_version="9", local_backlog=0, terminal_time=ahead)


def test_a_nonce_counts_once_per_terminal_while_it_is_kept(terminal):
    other = TerminalFactory(code="T0002")
    keep = timezone.now() + timedelta(minutes=5)
    assert services.terminal_nonce_use(terminal=terminal, nonce="bm9uY2U=", keep_until=keep)
    assert not services.terminal_nonce_use(terminal=terminal, nonce="bm9uY2U=", keep_until=keep)
    assert not services.terminal_nonce_use(terminal=terminal, nonce=" bm9u\nY2U= ", keep_until=keep)  # same nonce
    assert services.terminal_nonce_use(terminal=other, nonce="bm9uY2U=", keep_until=keep)  # another terminal's
    assert UsedNonce.objects.count() == 2
    assert all(len(n.nonce_digest) == 64 for n in UsedNonce.objects.all())  # only a digest is kept


def test_a_nonce_past_its_window_no_longer_counts_and_is_purged(terminal):
    past = timezone.now() - timedelta(seconds=1)
    assert services.terminal_nonce_use(terminal=terminal, nonce="old", keep_until=past)
    assert services.terminal_nonce_use(terminal=terminal, nonce="kept", keep_until=timezone.now() + timedelta(60))
    # Not purged yet, but its window is over: a new use counts (and keeps it again).
    assert services.terminal_nonce_use(terminal=terminal, nonce="old", keep_until=timezone.now() + timedelta(60))
    UsedNonce.objects.filter(nonce_digest=services.nonce_digest("old")).update(keep_until=past)
    assert services.terminal_nonces_purge() == 1
    assert list(UsedNonce.objects.values_list("nonce_digest", flat=True)) == [services.nonce_digest("kept")]


def test_the_minute_sweep_purges_the_nonces(terminal, monkeypatch):
    from messages import tasks

    services.terminal_nonce_use(terminal=terminal, nonce="gone", keep_until=timezone.now() - timedelta(seconds=1))
    tasks.sweep()
    assert not UsedNonce.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_of_concurrent_requests_with_one_nonce_exactly_one_gets_through():
    import threading

    from django.db import connection

    terminal = TerminalFactory(code="T0003")
    UsedNonce.objects.create(terminal=terminal, nonce_digest=services.nonce_digest("n1"), keep_until=timezone.now())
    barrier, results, errors = threading.Barrier(8), [], []

    def use(nonce):
        try:
            barrier.wait()
            results.append((nonce, services.terminal_nonce_use(terminal=terminal, nonce=nonce, keep_until=keep)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    keep = timezone.now() + timedelta(minutes=5)
    # n0: a fresh nonce; n1: one whose previous use is over (its row is replaced, once).
    threads = [threading.Thread(target=use, args=(f"n{i % 2}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(nonce for nonce, ok in results if ok) == ["n0", "n1"]
    assert UsedNonce.objects.filter(terminal=terminal).count() == 2
