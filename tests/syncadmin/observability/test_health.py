"""/healthz: database, worker heartbeat (the once-a-minute sample), overdue backlog."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from messages.models import Message
from messages.services.sampling import metric_sample_write
from syncadmin.models import MetricSample
from syncadmin.observability import health
from tests.factories import MessageFactory
from tests.messages.helpers import drain_all

pytestmark = pytest.mark.django_db


TOKEN = "health-detail-token"


@pytest.fixture(autouse=True)
def fresh_health_memory(settings):
    """Each test starts as a new web process would: no answer given yet."""
    settings.SYNC_METRICS_TOKEN = TOKEN
    health._last_healthy.clear()
    yield
    health._last_healthy.clear()


@pytest.fixture
def heartbeat_only(settings):
    """Cluster statistics invisible (ORM broker, local cache): the sample alone decides."""
    settings.Q_CLUSTER = {k: v for k, v in settings.Q_CLUSTER.items() if k != "redis"} | {"orm": "default"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.SYNC_HEALTHZ_WORKER_STALE_SECONDS = 120
    settings.SYNC_HEALTHZ_BACKLOG_OVERDUE_SECONDS = 300


def healthz(client, **params):
    """/healthz with its detail (the metrics token)."""
    response = client.get("/healthz", params, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
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


def test_anonymous_callers_get_healthy_or_unhealthy_only(client, heartbeat_only):
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json() == {"status": "unhealthy"}
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer wrong").json() == {"status": "unhealthy"}
    metric_sample_write()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "healthy"}
    assert client.get("/healthz", {"scope": "web"}).json() == {"status": "healthy"}


def test_the_detail_needs_the_metrics_token_or_a_logged_in_user(client, heartbeat_only, login_as, settings):
    assert set(healthz(client)[1]["checks"]) == {"database", "workers", "backlog"}
    settings.SYNC_METRICS_TOKEN = ""  # no token configured: a bearer header shows nothing
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer ").json() == {"status": "unhealthy"}
    body = login_as("Viewers").get("/healthz").json()
    assert body["status"] == "unhealthy" and not body["checks"]["workers"]["ok"]


def test_unhealthy_polls_log_one_warning_per_change_and_no_error(client, heartbeat_only, caplog):
    caplog.set_level(logging.INFO)
    assert [client.get("/healthz").status_code for _ in range(3)] == [503] * 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    changes = [r for r in caplog.records if r.name == "syncadmin.observability.health"]
    assert [r.levelno for r in changes] == [logging.WARNING] and "unhealthy" in changes[0].getMessage()
    assert "workers" in changes[0].getMessage() and "database" not in changes[0].getMessage()

    caplog.clear()
    metric_sample_write()
    assert [client.get("/healthz").status_code for _ in range(3)] == [200] * 3
    changes = [r for r in caplog.records if r.name == "syncadmin.observability.health"]
    assert [(r.levelno, r.getMessage()) for r in changes] == [(logging.WARNING, "healthz: healthy again (scope=all)")]


def test_a_healthy_start_logs_nothing(client, heartbeat_only, caplog):
    metric_sample_write()
    caplog.set_level(logging.INFO)
    assert client.get("/healthz").status_code == 200
    assert not [r for r in caplog.records if r.name == "syncadmin.observability.health"]
