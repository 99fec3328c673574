"""Notifications: a signed webhook to a real HTTP receiver (down, retried with backoff, then delivered) and e-mail."""

import hashlib
import hmac
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.checks import run_checks

from reconciliation.alerts import delivery, incidents
from reconciliation.models import AlertKind, AlertNotification
from tests.factories import AlertRuleFactory, MetricSampleFactory

pytestmark = pytest.mark.django_db

SECRET = "s3cret-shared-with-the-receiver"
NOW = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)


class Receiver:
    """A real HTTP server on a free loopback port, in a thread: what an alert webhook's receiver sees."""

    def __init__(self, port: int = 0):
        self.requests: list[tuple[dict, bytes]] = []
        self.status = 200
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.requests.append((dict(self.headers), body))
                self.send_response(received.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def verify(headers: dict, body: bytes, secret: str = SECRET) -> bool:
    """What docs/operations/alerts.md tells a receiver to do (the same code)."""
    timestamp = headers["X-SyncAdmin-Timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-SyncAdmin-Signature"])


def open_incident(now=NOW):
    for kind in AlertKind.values:
        AlertRuleFactory(kind=kind, enabled=kind == AlertKind.WORKERS_GONE, threshold=5)
    MetricSampleFactory(at=now - timedelta(minutes=12))
    return incidents.alerts_evaluate(now=now).opened[0]


def deliver_all(now):
    return [delivery.notification_deliver(notification_id=pk, now=now)
            for pk in AlertNotification.objects.values_list("pk", flat=True)]  # fmt: skip


def test_the_webhook_is_signed_json_once_on_open_and_once_on_clear(settings, receiver):
    settings.SYNC_ALERT_WEBHOOK_URLS, settings.SYNC_ALERT_WEBHOOK_SECRET = [receiver.url], SECRET
    settings.SYNC_ALERT_CONSOLE_URL = "https://hub.example.com"
    incident = open_incident()
    assert deliver_all(NOW) == ["sent"]
    assert deliver_all(NOW) == [""]  # sent: never again
    ((headers, body),) = receiver.requests
    assert verify(headers, body) and not verify(headers, body, secret="wrong")
    assert not verify(headers, body.replace(b'"opened"', b'"cleared"'))  # a changed body fails the check
    data = json.loads(body)
    assert data["incident"] == incident.pk and data["rule"] == "workers_gone" and data["state"] == "opened"
    assert data["subject"] == "" and data["value"] == 12.0 and data["threshold"] == 5.0
    assert datetime.fromisoformat(data["opened_at"]) == NOW and data["opened_at"].endswith("+00:00")
    assert data["cleared_at"] is None
    assert data["console_url"] == f"https://hub.example.com/alerts/#incident-{incident.pk}"

    MetricSampleFactory(at=NOW + timedelta(seconds=50))
    assert len(incidents.alerts_evaluate(now=NOW + timedelta(minutes=1)).cleared) == 1
    deliver_all(NOW + timedelta(minutes=1))
    assert [json.loads(b)["state"] for _, b in receiver.requests] == ["opened", "cleared"]
    assert datetime.fromisoformat(json.loads(receiver.requests[1][1])["cleared_at"]) == NOW + timedelta(minutes=1)


def test_a_receiver_down_is_retried_with_backoff_until_it_comes_back(settings):
    port = free_port()  # nothing listens there yet
    settings.SYNC_ALERT_WEBHOOK_URLS, settings.SYNC_ALERT_WEBHOOK_SECRET = [f"http://127.0.0.1:{port}/alerts"], SECRET
    settings.SYNC_ALERT_RETRY_BASE_SECONDS, settings.SYNC_ALERT_WEBHOOK_TIMEOUT_SECONDS = 30, 2
    open_incident()
    notification = AlertNotification.objects.get()

    at, waits = NOW, []
    for attempt in (1, 2, 3):
        assert delivery.notifications_due_deliver(now=at) == 0
        notification.refresh_from_db()
        assert notification.state == "pending" and notification.attempts == attempt
        assert "ConnectionError" in notification.last_error
        waits.append(notification.next_attempt_at - at)
        assert delivery.notifications_due_deliver(now=notification.next_attempt_at - timedelta(seconds=1)) == 0
        notification.refresh_from_db()
        assert notification.attempts == attempt  # not due yet: not tried
        at = notification.next_attempt_at
    assert waits == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]

    receiver = Receiver(port)  # the receiver comes back
    try:
        assert delivery.notifications_due_deliver(now=at) == 1
        notification.refresh_from_db()
        assert notification.state == "sent" and notification.attempts == 4 and notification.last_error == ""
        ((headers, body),) = receiver.requests
        assert verify(headers, body)
        assert delivery.notifications_due_deliver(now=at + timedelta(hours=1)) == 0  # delivered once
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


def test_an_error_status_is_retried_and_gives_up_after_the_last_attempt(settings, receiver):
    settings.SYNC_ALERT_WEBHOOK_URLS, settings.SYNC_ALERT_WEBHOOK_SECRET = [receiver.url], SECRET
    settings.SYNC_ALERT_MAX_ATTEMPTS = 3
    receiver.status = 503
    open_incident()
    at = NOW
    for _ in range(5):
        delivery.notifications_due_deliver(now=at)
        at += timedelta(hours=2)
    notification = AlertNotification.objects.get()
    assert notification.state == "failed" and notification.attempts == 3
    assert notification.last_error == "RuntimeError: HTTP 503 from the webhook"
    assert len(receiver.requests) == 3


def test_two_workers_given_the_same_notification_send_it_once(settings, receiver, monkeypatch):
    settings.SYNC_ALERT_WEBHOOK_URLS, settings.SYNC_ALERT_WEBHOOK_SECRET = [receiver.url], SECRET
    open_incident()
    pk = AlertNotification.objects.get().pk
    real = delivery.SENDERS["webhook"]

    def send_and_race(notification, payload):
        # While this worker sends, another takes the same id: the row is taken, it sends nothing.
        assert delivery.notification_deliver(notification_id=pk, now=NOW) == ""
        real(notification, payload)

    monkeypatch.setitem(delivery.SENDERS, "webhook", send_and_race)
    assert delivery.notification_deliver(notification_id=pk, now=NOW) == "sent"
    assert len(receiver.requests) == 1


def test_email_goes_through_djangos_mail_backend_once_each_way(settings):
    settings.SYNC_ALERT_EMAILS = ["ops@example.com", "oncall@example.com"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    open_incident()
    deliver_all(NOW)
    deliver_all(NOW)
    (message,) = mail.outbox
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.subject == "[SyncAdmin] OPENED: Worker cluster gone"
    assert "Value: 12 minutes since a worker ran the sample (threshold 5)." in message.body
    assert "Opened at: 2026-06-10T03:00:00+00:00" in message.body


def test_each_notification_is_handed_to_a_worker_by_dotted_path_once_the_incident_commits(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.SYNC_ALERT_WEBHOOK_URLS, settings.SYNC_ALERT_EMAILS = ["http://127.0.0.1:9/a"], ["ops@example.com"]
    enqueued = []
    monkeypatch.setattr(incidents, "async_task", lambda func, *args, **kw: enqueued.append((func, args)))
    with django_capture_on_commit_callbacks(execute=True):
        open_incident()
        assert enqueued == []  # not before the incident's transaction commits
    ids = sorted(AlertNotification.objects.values_list("pk", flat=True))
    assert sorted(enqueued) == [("reconciliation.tasks.alert_notification_deliver", (pk,)) for pk in ids]


def test_check_deploy_warns_of_a_webhook_without_a_secret(settings):
    settings.SYNC_ALERT_WEBHOOK_URLS, settings.SYNC_ALERT_WEBHOOK_SECRET = ["https://x.example/hook"], ""
    assert "syncadmin.W010" in [m.id for m in run_checks(include_deployment_checks=True)]
    settings.SYNC_ALERT_WEBHOOK_SECRET = SECRET
    assert "syncadmin.W010" not in [m.id for m in run_checks(include_deployment_checks=True)]
