"""Dashboard, audit log, login (with throttling), groups, error pages."""

from datetime import UTC, datetime, timedelta

import pytest
from axes.models import AccessAttempt, AccessLog
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
    from terminals.models import TerminalHealthSnapshot

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


def _login(username: str, password: str = "correct horse battery staple", *, via: str) -> int:
    """A login from client address ``via``, through nginx on this node (SYNC_TRUSTED_PROXIES)."""
    client = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=via)
    return client.post("/accounts/login/", {"username": username, "password": password}).status_code


@pytest.fixture
def behind_proxy(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SYNC_TRUSTED_PROXIES = ["127.0.0.1"]
    settings.AXES_FAILURE_LIMIT, settings.SYNC_LOGIN_IP_FAILURE_LIMIT = 5, 8
    UserFactory(username="admin", group="Support")
    UserFactory(username="mallory", group="Viewers")


def test_failures_from_one_address_never_lock_the_account_from_another(behind_proxy):
    assert [_login("admin", "wrong", via="198.51.100.1") for _ in range(5)] == [200] * 4 + [429]
    locked = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1").post(
        "/accounts/login/", {"username": "admin", "password": "correct horse battery staple"}
    )
    assert locked.status_code == 429 and b"Too many failed logins" in locked.content
    assert _login("admin", via="198.51.100.2") == 302
    # django-axes' login records carry the client's address, not the proxy's
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.1"}
    assert list(AccessLog.objects.values_list("username", "ip_address")) == [("admin", "198.51.100.2")]


def test_a_password_spray_from_one_address_locks_the_address(behind_proxy, settings):
    answers = [_login(f"user{i}", "Summer2026!", via="198.51.100.3") for i in range(8)]
    assert answers == [200] * 7 + [429]  # eight usernames, one failure each: the address's limit
    assert _login("admin", via="198.51.100.3") == 429  # every login from it, even a right one
    assert _login("admin", via="198.51.100.4") == 302


def test_a_success_clears_only_that_usernames_failures_from_that_address(behind_proxy):
    """Logging in with one's own account between tries resets neither a spray nor a guess at
    someone else's password (django-axes' default reset would clear both)."""
    assert [_login(f"user{i}", "wrong", via="198.51.100.5") for i in range(6)] == [200] * 6
    assert _login("mallory", via="198.51.100.5") == 302
    assert [_login(f"user{i}", "wrong", via="198.51.100.5") for i in (6, 7)] == [200, 429]

    assert [_login("admin", "wrong", via="198.51.100.6") for _ in range(4)] == [200] * 4
    assert _login("mallory", via="198.51.100.6") == 302
    assert _login("admin", "wrong", via="198.51.100.6") == 429


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(behind_proxy):
    for i in range(5):
        Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"198.51.100.{10 + i}").post(
            "/accounts/login/", {"username": "admin", "password": "wrong"}
        )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}
    direct = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert (
        direct.post("/accounts/login/", {"username": "admin", "password": "correct horse battery staple"}).status_code
        == 429
    )


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
