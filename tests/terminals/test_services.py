"""terminals/services.py: the heartbeat's future-time rule."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from terminals import services
from terminals.models import Terminal

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
