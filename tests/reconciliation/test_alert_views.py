"""The alerts pages: every role sees incidents and rules; only Terminal admins edit a rule (audited).

Bad input is a form error, never a 500.
"""

from datetime import UTC, datetime, timedelta

import pytest

from reconciliation.alerts import delivery, incidents
from reconciliation.models import AlertKind, AlertNotification, AlertRule
from syncadmin.models import AuditEntry
from tests.factories import AlertRuleFactory, MetricSampleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(settings):
    settings.SYNC_ALERT_WEBHOOK_URLS = ["http://127.0.0.1:9/down"]
    settings.SYNC_ALERT_MAX_ATTEMPTS = 1
    now = datetime.now(UTC)
    for kind in AlertKind.values:
        AlertRuleFactory(kind=kind, enabled=kind == AlertKind.WORKERS_GONE)
    MetricSampleFactory(at=now - timedelta(minutes=30))
    opened = incidents.alerts_evaluate(now=now).opened[0]
    delivery.notifications_due_deliver(now=now)  # nobody listens on port 9: failed at once
    return opened


@pytest.mark.parametrize("role", ["Viewers", "Support", "Terminal admins"])
def test_every_role_sees_the_open_incident_and_the_failed_delivery(login_as, incident, role):
    client = login_as(role)
    page = client.get("/alerts/").content.decode()
    assert f'id="incident-{incident.pk}"' in page and "Worker cluster gone" in page
    assert "could not be delivered" in page
    assert ("/edit/" in page) == (role == "Terminal admins")  # the edit link only where it would work
    outbox = client.get("/alerts/notifications/?state=failed").content.decode()
    assert "http://127.0.0.1:9/down" in outbox and "ConnectionError" in outbox
    assert client.get("/").content.decode().count(f"#incident-{incident.pk}") == 1  # the dashboard's card


def test_a_terminal_admin_edits_a_rule_and_it_is_audited(login_as):
    client = login_as("Terminal admins")
    rule = AlertRule.objects.get(kind="dead_letter_rate")
    response = client.post(f"/alerts/rules/{rule.pk}/edit/", {"threshold": "25", "for_minutes": "4", "reason": "noisy"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.enabled, rule.threshold, rule.for_minutes, rule.updated_by) == (False, 25, 4, "user:terminal_admins")
    entry = AuditEntry.objects.get(action="alert_rule.edit")
    assert entry.reason == "noisy" and entry.detail["after"] == {"enabled": False, "threshold": 25.0, "for_minutes": 4}


@pytest.mark.parametrize("data", [
    {"threshold": "-1", "for_minutes": "0"},
    {"threshold": "nan", "for_minutes": "0"},
    {"threshold": "1e400", "for_minutes": "0"},
    {"threshold": "5", "for_minutes": "99999999999999999999"},
    {"threshold": "5\x00", "for_minutes": "1"},
    {"threshold": "", "for_minutes": ""},
])  # fmt: skip
def test_bad_rule_input_is_a_form_error_and_changes_nothing(login_as, data):
    client = login_as("Terminal admins")
    rule = AlertRule.objects.get(kind="dead_letter_rate")
    before = (rule.threshold, rule.for_minutes)
    response = client.post(f"/alerts/rules/{rule.pk}/edit/", data)
    assert response.status_code == 400 and b"errorlist" in response.content
    rule.refresh_from_db()
    assert (rule.threshold, rule.for_minutes) == before


def test_bad_filters_are_a_notice_not_a_500(login_as, incident):
    client = login_as("Viewers")
    assert client.get("/alerts/?state=nope&subject=%00").status_code == 200
    assert client.get("/alerts/notifications/?channel=pigeon").status_code == 200
    assert client.get("/alerts/rules/999999/edit/").status_code == 403  # a Viewer: refused before the lookup
    assert login_as("Terminal admins").get("/alerts/rules/999999/edit/").status_code == 404


def test_anonymous_goes_to_the_login_page(client):
    assert client.get("/alerts/")["Location"].startswith("/accounts/login/")
    assert AlertNotification.objects.count() == 0


@pytest.mark.parametrize("role", ["Viewers", "Support", "Terminal admins"])
def test_a_terminal_admin_resends_a_failed_notification_once_and_it_is_audited(login_as, incident, role, settings):
    failed = AlertNotification.objects.get(incident=incident, event="opened")
    assert failed.state == "failed" and failed.attempts == 1
    client = login_as(role)
    page = client.get("/alerts/notifications/").content.decode()
    assert (f'id="resend-{failed.pk}"' in page) == (role == "Terminal admins")
    response = client.post(f"/alerts/notifications/{failed.pk}/resend/", HTTP_HX_REQUEST="true")
    failed.refresh_from_db()
    if role != "Terminal admins":
        assert response.status_code == 403 and failed.state == "failed" and failed.attempts == 1
        assert not AuditEntry.objects.filter(action="alert_notification.resend").exists()
        return
    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    assert (failed.state, failed.attempts, failed.last_error != "") == ("pending", 0, True)  # the error stays to read
    assert AuditEntry.objects.get(action="alert_notification.resend").object_id == str(failed.pk)
    again = client.post(f"/alerts/notifications/{failed.pk}/resend/", follow=True)  # not failed any more
    assert "not failed: nothing to resend" in again.content.decode()
    assert AuditEntry.objects.filter(action="alert_notification.resend").count() == 1
    # Delivered through the usual path: still nobody on port 9, so one more attempt, failed again.
    assert delivery.notification_deliver(notification_id=failed.pk) == "failed"
    failed.refresh_from_db()
    assert (failed.state, failed.attempts) == ("failed", 1)
