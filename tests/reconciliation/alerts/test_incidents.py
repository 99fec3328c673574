"""Each alert rule opens one incident, never re-opens it while open, clears it, and writes one notification each way."""

import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import IntegrityError, connection

from messages.models import DeadLetter, DeadLetterGroupNote, Message, MessageState, TriageStatus
from reconciliation.alerts import incidents, measures
from reconciliation.models import AlertKind, AlertNotification, Discrepancy, Incident, ReconciliationRun, RunStatus
from syncadmin.models import AuditEntry, MetricSample
from terminals.models import Terminal
from tests.factories import AlertRuleFactory, DeadLetterFactory, MessageFactory, MetricSampleFactory, TerminalFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)  # 15:00 in Auckland (NZST), 23:00 the day before in New York


@pytest.fixture(autouse=True)
def channels(settings):
    settings.SYNC_ALERT_WEBHOOK_URLS = ["http://127.0.0.1:9/hook"]
    settings.SYNC_ALERT_EMAILS = ["ops@example.com", "oncall@example.com"]
    settings.SYNC_ALERT_SALES_ENTITY = "sale"


# --- each rule: make it fire, make it calm ----------------------------------------------------------


def backlog_fire():
    MessageFactory(state=MessageState.RECEIVED, next_attempt_at=NOW - timedelta(minutes=30))


def backlog_calm():
    Message.objects.update(state=MessageState.PROCESSED, next_attempt_at=None)


def dead_letter_fire():
    for _ in range(3):
        DeadLetterFactory(dead_lettered_at=NOW - timedelta(seconds=20))


def dead_letter_calm():
    DeadLetter.objects.update(dead_lettered_at=NOW - timedelta(minutes=5))


def offline_fire():
    TerminalFactory(code="OFF-1", last_heartbeat_at=NOW - timedelta(minutes=40))


def offline_calm():
    Terminal.objects.filter(code="OFF-1").update(last_heartbeat_at=NOW)


def no_sales_fire():
    # Auckland: 15:00 local, open since 08:00; a heartbeat a minute ago, the last sale 2 hours ago.
    till = TerminalFactory(code="AKL-1", last_heartbeat_at=NOW - timedelta(minutes=1), time_zone="Pacific/Auckland",
                           opens_at=time(8), closes_at=time(21))  # fmt: skip
    MessageFactory(terminal=till, message_type="sale.create", received_at=NOW - timedelta(hours=2))


def no_sales_calm():
    MessageFactory(terminal=Terminal.objects.get(code="AKL-1"), message_type="sale.create", received_at=NOW)


def drift_fire():
    run = ReconciliationRun.objects.create(created_at=NOW, finished_at=NOW, trigger="command", status=RunStatus.DONE)
    for code in ("A", "B"):
        Discrepancy.objects.create(run=run, terminal_code=code, entity_type="product", kind="gap", terminal_count=3,
                                   central_count=1, recount=1, delta=2)  # fmt: skip


def drift_calm():
    Discrepancy.objects.update(explained_at=NOW, explained_by="user:test", note="known")


def workers_fire():
    MetricSampleFactory(at=NOW - timedelta(minutes=12))


def workers_calm():
    MetricSampleFactory(at=NOW - timedelta(seconds=30))


RULES = [
    (AlertKind.BACKLOG_OVERDUE, 10, backlog_fire, backlog_calm, "", 30.0),
    (AlertKind.DEAD_LETTER_RATE, 2, dead_letter_fire, dead_letter_calm, "", 3.0),
    (AlertKind.TERMINAL_OFFLINE, 15, offline_fire, offline_calm, "OFF-1", 40.0),
    (AlertKind.TERMINAL_NO_SALES, 60, no_sales_fire, no_sales_calm, "AKL-1", 120.0),
    (AlertKind.RECONCILIATION_DRIFT, 0, drift_fire, drift_calm, "", 2.0),
    (AlertKind.WORKERS_GONE, 5, workers_fire, workers_calm, "", 12.0),
]


def only(kind, threshold, for_minutes=0):
    """Every rule off but ``kind`` (the others would see this test's data too)."""
    for other in AlertKind.values:
        AlertRuleFactory(kind=other, enabled=False)
    return AlertRuleFactory(kind=kind, threshold=threshold, for_minutes=for_minutes, enabled=True)


def notifications(event):
    return sorted(AlertNotification.objects.filter(event=event).values_list("channel", "target"))


EXPECTED = [("email", "ops@example.com,oncall@example.com"), ("webhook", "http://127.0.0.1:9/hook")]


@pytest.mark.parametrize("kind,threshold,fire,calm,subject,value", RULES, ids=[r[0] for r in RULES])
def test_a_rule_opens_once_stays_open_and_clears_once(kind, threshold, fire, calm, subject, value):
    only(kind, threshold)
    assert incidents.alerts_evaluate(now=NOW).opened == []  # quiet: nothing

    fire()
    first = incidents.alerts_evaluate(now=NOW)
    assert [(i.rule.kind, i.subject, i.state) for i in first.opened] == [(kind, subject, "open")]
    assert first.opened[0].value == pytest.approx(value)
    assert notifications("opened") == EXPECTED

    for minute in (1, 2, 3):  # still firing: the same incident, no new notification
        again = incidents.alerts_evaluate(now=NOW + timedelta(seconds=minute))
        assert again.opened == [] and again.cleared == []
    assert Incident.objects.count() == 1
    assert AlertNotification.objects.count() == 2

    calm()
    cleared = incidents.alerts_evaluate(now=NOW + timedelta(seconds=10))
    assert [i.pk for i in cleared.cleared] == [first.opened[0].pk]
    incident = Incident.objects.get()
    assert incident.state == "cleared" and incident.cleared_at == NOW + timedelta(seconds=10)
    assert notifications("cleared") == EXPECTED
    assert incidents.alerts_evaluate(now=NOW + timedelta(seconds=20)).cleared == []
    assert AlertNotification.objects.count() == 4


def test_a_flapping_value_makes_one_incident_with_a_hold_time():
    """for_minutes: opens after the condition held that long, clears after it was gone as long."""
    only(AlertKind.DEAD_LETTER_RATE, 2, for_minutes=3)
    dead_letter_fire()
    assert incidents.alerts_evaluate(now=NOW).opened == []  # pending: nobody told yet
    assert Incident.objects.get().state == "pending" and AlertNotification.objects.count() == 0
    DeadLetter.objects.update(dead_lettered_at=NOW + timedelta(minutes=3) - timedelta(seconds=10))  # still coming
    assert incidents.alerts_evaluate(now=NOW + timedelta(minutes=3)).opened != []
    for minute in range(4, 12):  # calm, firing, calm, firing...: never long enough to clear
        at = NOW + timedelta(minutes=minute)
        DeadLetter.objects.update(dead_lettered_at=at - timedelta(seconds=10 if minute % 2 else 300))
        result = incidents.alerts_evaluate(now=at)
        assert result.opened == [] and result.cleared == []
    DeadLetter.objects.update(dead_lettered_at=NOW)
    assert incidents.alerts_evaluate(now=NOW + timedelta(minutes=13)).cleared == []  # gone 1 minute
    assert incidents.alerts_evaluate(now=NOW + timedelta(minutes=16)).cleared != []  # gone 3 minutes
    assert Incident.objects.count() == 1 and AlertNotification.objects.count() == 4


def test_a_condition_gone_before_its_hold_time_tells_nobody():
    only(AlertKind.DEAD_LETTER_RATE, 2, for_minutes=5)
    dead_letter_fire()
    incidents.alerts_evaluate(now=NOW)
    dead_letter_calm()
    incidents.alerts_evaluate(now=NOW + timedelta(minutes=1))
    assert Incident.objects.count() == 0 and AlertNotification.objects.count() == 0


def test_one_incident_per_terminal_and_a_second_live_one_is_refused():
    rule = only(AlertKind.TERMINAL_OFFLINE, 15)
    for code in ("OFF-1", "OFF-2"):
        TerminalFactory(code=code, last_heartbeat_at=NOW - timedelta(hours=1))
    TerminalFactory(code="NEVER")  # never sent a heartbeat: not installed yet, not offline
    assert sorted(i.subject for i in incidents.alerts_evaluate(now=NOW).opened) == ["OFF-1", "OFF-2"]
    with pytest.raises(IntegrityError):  # what a second, concurrent evaluator would hit
        Incident.objects.create(rule=rule, subject="OFF-1", state="pending", first_seen_at=NOW, value=1,
                                threshold=1, updated_at=NOW)  # fmt: skip


def test_disabling_a_rule_clears_its_incidents():
    rule = only(AlertKind.WORKERS_GONE, 5)
    workers_fire()
    incidents.alerts_evaluate(now=NOW)
    incidents.alert_rule_update(rule=rule, enabled=False, threshold=5, for_minutes=0, actor="user:admin", reason="r")
    assert len(incidents.alerts_evaluate(now=NOW).cleared) == 1
    entry = AuditEntry.objects.get(action="alert_rule.edit")
    assert entry.actor == "user:admin" and entry.detail["after"]["enabled"] is False


def test_a_failing_measure_leaves_the_other_rules_evaluated(monkeypatch):
    only(AlertKind.WORKERS_GONE, 5)
    AlertRuleFactory(kind=AlertKind.BACKLOG_OVERDUE, threshold=10, enabled=True)
    monkeypatch.setitem(measures.MEASURES, AlertKind.BACKLOG_OVERDUE, lambda rule, now: 1 / 0)
    workers_fire()
    assert len(incidents.alerts_evaluate(now=NOW).opened) == 1


def test_without_channels_incidents_open_with_no_notification(settings):
    settings.SYNC_ALERT_WEBHOOK_URLS, settings.SYNC_ALERT_EMAILS = [], []
    only(AlertKind.WORKERS_GONE, 5)
    workers_fire()
    assert len(incidents.alerts_evaluate(now=NOW).opened) == 1
    assert AlertNotification.objects.count() == 0


def test_no_worker_ever_is_not_an_outage():
    only(AlertKind.WORKERS_GONE, 5)
    assert MetricSample.objects.count() == 0
    assert incidents.alerts_evaluate(now=NOW).opened == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # real commits: the evaluators race on separate connections
def test_evaluators_running_at_once_open_one_incident_and_notify_once():
    """Four evaluators at the same instant (the schedule and the timer's command overlapping) on
    PostgreSQL: the unique partial constraint and the compare-and-set leave one incident, two rows."""
    only(AlertKind.TERMINAL_OFFLINE, 15)
    offline_fire()
    barrier, errors = threading.Barrier(4), []

    def evaluate():
        try:
            barrier.wait()
            incidents.alerts_evaluate(now=NOW)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Incident.objects.filter(state="open").count() == 1
    assert notifications("opened") == EXPECTED


@pytest.mark.parametrize("grouping", ["reason", "terminal", "entity"])
def test_dead_letters_of_a_group_on_hold_raise_no_alert(grouping):
    """Issue 20: support put the failure group on hold (by reason, terminal or entity type): no page for it."""
    only(AlertKind.DEAD_LETTER_RATE, 2)
    dead_letter_fire()
    letter = DeadLetter.objects.select_related("message__terminal").first()
    key = {"reason": letter.group_key, "terminal": letter.message.terminal.code, "entity": letter.message.entity_type}
    note = DeadLetterGroupNote.objects.create(grouping=grouping, key=key[grouping], status=TriageStatus.INVESTIGATING)
    assert [i.rule.kind for i in incidents.alerts_evaluate(now=NOW).opened] == [AlertKind.DEAD_LETTER_RATE]
    Incident.objects.all().delete()
    AlertNotification.objects.all().delete()

    note.status = TriageStatus.ON_HOLD
    note.save()
    assert incidents.alerts_evaluate(now=NOW + timedelta(seconds=1)).opened == []
    assert not AlertNotification.objects.exists()
