"""/healthz: database, worker heartbeat (the once-a-minute sample), overdue backlog."""

from datetime import UTC, datetime, timedelta

import pytest

from messages.models import Message
from syncadmin.models import MetricSample
from syncadmin.observability.sampling import metric_sample_write
from tests.factories import MessageFactory
from tests.messages.test_services import drain_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def heartbeat_only(settings):
    """Cluster statistics invisible (ORM broker, local cache): the sample alone decides."""
    settings.Q_CLUSTER = {k: v for k, v in settings.Q_CLUSTER.items() if k != "redis"} | {"orm": "default"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.SYNC_HEALTHZ_WORKER_STALE_SECONDS = 120
    settings.SYNC_HEALTHZ_BACKLOG_OVERDUE_SECONDS = 300


def healthz(client, **params):
    response = client.get("/healthz", params)
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def test_unhealthy_without_a_worker_heartbeat_then_healthy_once_the_sample_runs(client, heartbeat_only):
    status, body = healthz(client)
    assert status == 503 and body["status"] == "unhealthy"
    assert body["checks"]["database"]["ok"] and not body["checks"]["workers"]["ok"]
    assert body["checks"]["workers"]["last_sample_age_seconds"] is None
    metric_sample_write()  # what the worker cluster's schedule does every minute
    status, body = healthz(client)
    assert status == 200 and body["status"] == "healthy", body
    MetricSample.objects.update(at=datetime.now(UTC) - timedelta(seconds=121))  # the cluster stopped
    status, body = healthz(client)
    assert status == 503 and not body["checks"]["workers"]["ok"]
    assert body["checks"]["workers"]["last_sample_age_seconds"] > 120


def test_unhealthy_while_due_work_is_overdue_and_healthy_again_once_drained(client, terminal, heartbeat_only):
    metric_sample_write()
    MessageFactory(terminal=terminal, next_attempt_at=datetime.now(UTC) - timedelta(seconds=30))
    assert healthz(client)[0] == 200
    late = MessageFactory(terminal=terminal, next_attempt_at=datetime.now(UTC) - timedelta(seconds=400))
    status, body = healthz(client)
    assert status == 503 and not body["checks"]["backlog"]["ok"] and body["checks"]["workers"]["ok"]
    assert body["checks"]["backlog"]["overdue_seconds"] >= 400
    # work in backoff (not due yet) is not overdue, however old the message
    Message.objects.filter(pk=late.pk).update(
        state="Failed",
        received_at=datetime.now(UTC) - timedelta(days=1),
        next_attempt_at=datetime.now(UTC) + timedelta(60),
    )
    assert healthz(client)[0] == 200
    Message.objects.filter(pk=late.pk).update(next_attempt_at=datetime.now(UTC) - timedelta(seconds=400))
    assert healthz(client)[0] == 503
    drain_all()
    assert healthz(client)[0] == 200


def test_web_scope_checks_the_database_only(client, heartbeat_only):
    status, body = healthz(client, scope="web")
    assert status == 200 and set(body["checks"]) == {"database"}
