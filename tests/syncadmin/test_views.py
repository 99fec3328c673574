"""Dashboard, audit log, login (with throttling), groups, error pages."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from messages.models import MessageState
from syncadmin.models import AuditEntry
from syncadmin.services import audit_record
from tests.factories import DeadLetterFactory, MessageFactory, MetricSampleFactory, TerminalFactory, UserFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_groups_and_permissions_exist():
    perms = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert "retry_message" not in perms["Viewers"] and "view_message" in perms["Viewers"]
    assert {"retry_message", "discard_message"} <= perms["Support"]
    assert "rotate_key" not in perms["Support"] and "edit_payload" not in perms["Support"]
    assert {"rotate_key", "manage_terminal", "edit_payload", "retry_message"} <= perms["Terminal admins"]


def test_dashboard_figures(login_as, settings):
    settings.TERMINAL_OFFLINE_SECONDS = 300
    now = datetime.now(UTC)
    MessageFactory.create_batch(2, state=MessageState.RECEIVED, received_at=now - timedelta(minutes=10))
    MessageFactory(state=MessageState.FAILED)
    MessageFactory(state=MessageState.PROCESSED, processed_at=now)
    DeadLetterFactory()
    TerminalFactory(code="OFF", last_heartbeat_at=now - timedelta(hours=2))
    response = login_as("Viewers").get("/")
    assert response.status_code == 200
    d = response.context["d"]
    assert d.backlog == 3 and d.states["DeadLettered"] == 1 and d.dead_letters_open == 1
    assert d.throughput_hour == 1 and d.throughput_source == "live"
    assert 500 < d.oldest_backlog_seconds < 700
    assert d.terminals_offline >= 1
    body = response.content.decode()
    assert "No metric samples yet" in body  # empty state instead of a chart
    assert 'hx-trigger="every' in body


def test_dashboard_htmx_partial_and_chart(login_as):
    now = datetime.now(UTC)
    for i in range(5):
        MetricSampleFactory(at=now - timedelta(minutes=5 - i), backlog=10 * i, processed_last_minute=7)
    response = login_as("Viewers").get("/?window=1h", **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body and body.count("<svg") == 2 and "<polyline" in body
    assert response.context["d"].throughput_hour == 35
    assert response.context["d"].throughput_source == "samples"


def test_dashboard_shows_discrepancies_and_terminal_health(login_as):
    from reconciliation.models import Discrepancy, ReconciliationRun
    from syncadmin.models import TerminalHealthSnapshot

    client = login_as("Viewers")
    assert "health: not sampled yet" in client.get("/").content.decode()
    now = datetime.now(UTC)
    run = ReconciliationRun.objects.create(trigger="command", status="done", created_at=now, finished_at=now)
    Discrepancy.objects.create(run=run, terminal_code="A", entity_type="product", kind="gap",
                               terminal_count=3, central_count=1, recount=1, delta=2)  # fmt: skip
    for code, level in [("H1", "healthy"), ("H2", "healthy"), ("D1", "degraded")]:
        TerminalHealthSnapshot.objects.create(terminal=TerminalFactory(code=code), level=level, computed_at=now)
    response = client.get("/")
    d = response.context["d"]
    assert d.discrepancies_open == 1
    assert d.terminal_health == {"healthy": 2, "degraded": 1, "failing": 0}
    assert "2 healthy" in response.content.decode()


def test_audit_log_lists_and_filters(login_as):
    audit_record(actor="user:ann", action="message.retry", object_type="message", object_id="1", reason="fixed")
    audit_record(actor="user:bob", action="terminal.rotate_key", object_type="terminal", object_id="T1")
    client = login_as("Viewers")
    response = client.get("/audit/")
    assert response.status_code == 200 and b"terminal.rotate_key" in response.content
    partial = client.get("/audit/?actor=ann", **HX)
    assert [e.actor for e in partial.context["page"].rows] == ["user:ann"]
    assert b"<html" not in partial.content
    assert [e.actor for e in client.get("/audit/?action=terminal", **HX).context["page"].rows] == ["user:bob"]


def test_login_page_and_login(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    UserFactory(username="ann", group="Support")
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "ann", "password": "correct horse battery staple"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_failed_logins_are_throttled(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    UserFactory(username="eve", group="Support")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "eve", "password": "wrong"})
    locked = client.post("/accounts/login/", {"username": "eve", "password": "correct horse battery staple"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert client.get("/").status_code == 302  # not logged in


def test_logout_needs_post(login_as):
    client = login_as("Viewers")
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_every_console_action_is_audited(login_as):
    """Retry, discard, bulk, terminal changes and key rotation each leave who/what/why."""
    dl1, dl2 = DeadLetterFactory.create_batch(2)
    t = TerminalFactory(code="AU1")
    client = login_as("Terminal admins")
    client.post(f"/messages/{dl1.message.pk}/retry/", {"reason": "r1"}, **HX)
    client.post(f"/messages/{dl2.message.pk}/discard/", {"reason": "r2"}, **HX)
    client.post(f"/terminals/{t.pk}/rotate-key/", {"reason": "r3"}, **HX)
    entries = list(AuditEntry.objects.order_by("pk").values_list("actor", "action", "reason"))
    assert entries == [
        ("user:terminal_admins", "message.retry", "r1"),
        ("user:terminal_admins", "message.discard", "r2"),
        ("user:terminal_admins", "terminal.rotate_key", "r3"),
    ]


def test_unknown_page_is_a_friendly_404(login_as):
    response = login_as("Viewers").get("/messages/999999/")
    assert response.status_code == 404 and b"Not found" in response.content
