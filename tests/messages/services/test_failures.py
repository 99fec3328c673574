"""messages/services/failures.py: backoff and dead letters."""

import pytest

from messages import services
from messages.models import MessageState

S = MessageState
pytestmark = pytest.mark.django_db


def test_backoff_grows_exponentially_with_jitter(settings):
    settings.SYNC_BACKOFF_BASE_SECONDS, settings.SYNC_BACKOFF_MAX_SECONDS = 2, 60
    for attempts, ceiling in [(1, 2), (2, 4), (3, 8), (10, 60)]:
        values = [services.backoff_seconds(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert len(set(values)) > 1
