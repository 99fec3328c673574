"""reconciliation/terminal_health.py: each input of the health score, the thresholds, the query count, the badge."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext

from messages.models import Message, MessageState
from reconciliation import terminal_health as health_module
from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.terminal_health import terminal_health, terminal_health_snapshot_write
from terminals.selectors import (
    terminal_health_snapshot,
    terminal_health_summary,
    terminal_status_counts,
)
from tests.factories import MessageFactory, TerminalFactory

S = MessageState
pytestmark = pytest.mark.django_db


def ago(seconds):
    return datetime.now(UTC) - timedelta(seconds=seconds)


def seen(code, seconds=10, **kw):
    return TerminalFactory(code=code, last_heartbeat_at=ago(seconds), **kw)


def processed(terminal, n=1, received=60, **kw):
    return [
        MessageFactory(
            terminal=terminal, state=S.PROCESSED, received_at=ago(received), processed_at=ago(received - 1), **kw
        )
        for _ in range(n)
    ]


def test_a_terminal_that_heartbeats_and_lands_its_work_is_healthy():
    t = seen("OK")
    processed(t, 3)
    h = terminal_health()[t.pk]
    assert (h.level, h.reasons, h.backlog, h.recent_messages, h.error_rate) == ("healthy", [], 0, 3, 0.0)
    assert h.heartbeat_age < 60


def test_heartbeat_age_grades_degraded_then_failing(settings):
    settings.SYNC_HEALTH_HEARTBEAT_DEGRADED_SECONDS, settings.SYNC_HEALTH_HEARTBEAT_FAILING_SECONDS = 300, 3600
    late, gone, never = seen("LATE", 600), seen("GONE", 7200), TerminalFactory(code="NEW")
    off = TerminalFactory(code="OFF", enabled=False)
    health = terminal_health()
    assert health[late.pk].level == "degraded" and "no heartbeat for 600s" in health[late.pk].reasons[0]
    assert health[gone.pk].level == "failing"
    assert (health[never.pk].level, health[never.pk].reasons) == ("degraded", ["no heartbeat yet"])
    assert (health[off.pk].level, health[off.pk].reasons) == ("healthy", ["disabled"])
    assert terminal_status_counts() == {"online": 0, "offline": 3, "disabled": 1}


def test_backlog_age_and_stalled_applies(settings):
    settings.SYNC_HEALTH_BACKLOG_DEGRADED_SECONDS, settings.SYNC_HEALTH_BACKLOG_FAILING_SECONDS = 300, 1800
    settings.SYNC_HEALTH_APPLY_DEGRADED_SECONDS, settings.SYNC_HEALTH_APPLY_FAILING_SECONDS = 600, 3600
    fresh, slow, stuck = seen("FRESH"), seen("SLOW"), seen("STUCK")
    processed(fresh, received=30)
    MessageFactory(terminal=fresh, received_at=ago(20))
    processed(slow, received=500)
    MessageFactory(terminal=slow, received_at=ago(400))
    processed(stuck, received=7300)
    MessageFactory(terminal=stuck, received_at=ago(2000), state=S.FAILED)
    health = terminal_health()
    assert health[fresh.pk].level == "healthy" and health[fresh.pk].backlog == 1
    assert health[slow.pk].level == "degraded" and "oldest 400s" in health[slow.pk].reasons[0]
    assert health[stuck.pk].level == "failing"
    assert any("nothing applied for 7" in r for r in health[stuck.pk].reasons)


def test_backlog_spans_received_and_failed_and_dead_letters_are_counted_apart(settings):
    settings.SYNC_HEALTH_BACKLOG_DEGRADED_SECONDS, settings.SYNC_HEALTH_BACKLOG_FAILING_SECONDS = 300, 1800
    t, quiet = seen("MIX"), seen("QUIET")
    MessageFactory(terminal=t, received_at=ago(100), state=S.RECEIVED)
    MessageFactory(terminal=t, received_at=ago(400), state=S.FAILED)  # the oldest waiting one
    MessageFactory.create_batch(2, terminal=t, received_at=ago(5000), state=S.DEAD_LETTERED)  # not the backlog
    processed(t, received=50)
    health = terminal_health()
    h = health[t.pk]
    assert (h.backlog, h.dead_letters, h.level) == (2, 2, "degraded")
    assert 400 <= h.backlog_age < 460 and "2 message(s) waiting, oldest 4" in h.reasons[0]
    assert (health[quiet.pk].backlog, health[quiet.pk].dead_letters, health[quiet.pk].backlog_age) == (0, 0, None)


def test_recent_error_rate_needs_enough_messages(settings):
    settings.SYNC_HEALTH_ERROR_MIN_MESSAGES = 10
    settings.SYNC_HEALTH_ERROR_RATE_DEGRADED, settings.SYNC_HEALTH_ERROR_RATE_FAILING = 0.05, 0.25
    settings.SYNC_HEALTH_ERROR_WINDOW_SECONDS = 900
    few, some, many, old = seen("FEW"), seen("SOME"), seen("MANY"), seen("OLD")
    processed(few, 2)
    MessageFactory(terminal=few, state=S.DEAD_LETTERED, received_at=ago(30))
    processed(some, 18)
    processed(some, 1, attempts=3)  # landed, but only after retries: counts as an error
    MessageFactory(terminal=some, state=S.DEAD_LETTERED, received_at=ago(30))
    processed(many, 6)
    for _ in range(4):
        MessageFactory(terminal=many, state=S.DEAD_LETTERED, received_at=ago(30))
    for _ in range(10):
        MessageFactory(terminal=old, state=S.DEAD_LETTERED, received_at=ago(5000))  # outside the window
    processed(old, 1, received=20)
    health = terminal_health()
    # 1 in 3 failed, but 3 messages are too few to judge a rate
    assert health[few.pk].error_rate == pytest.approx(1 / 3) and health[few.pk].level == "healthy"
    assert health[some.pk].error_rate == pytest.approx(0.1) and health[some.pk].level == "degraded"
    assert health[many.pk].error_rate == pytest.approx(0.4) and health[many.pk].level == "failing"
    assert health[old.pk].recent_messages == 1 and health[old.pk].level == "healthy"


def test_client_version_and_reconciliation_drift(settings, monkeypatch):
    settings.SYNC_HEALTH_MIN_APP_VERSION = "2.10.0"
    old, new = seen("OLDV", app_version="2.9.7"), seen("NEWV", app_version="2.10.1")
    health = terminal_health()
    assert health[old.pk].level == "degraded" and "older than 2.10.0" in health[old.pk].reasons[0]
    assert health[new.pk].level == "healthy"

    # the reconciliation app's open discrepancies per terminal (by pk or code)
    monkeypatch.setattr(health_module, "discrepancy_open_count_by_terminal", lambda: {new.pk: 12, "OLDV": 1})
    health = terminal_health()
    assert health[new.pk].drift == 12 and health[new.pk].level == "failing"
    assert health[old.pk].drift == 1 and health[old.pk].level == "degraded"


def test_the_open_discrepancies_of_the_latest_run_are_the_terminals_drift(settings):
    """The drift input used to be read through an import guarded by ``except (ImportError, AttributeError)``
    of a selector that did not exist: every terminal's drift was silently None whatever the runs found."""
    settings.SYNC_HEALTH_DRIFT_DEGRADED, settings.SYNC_HEALTH_DRIFT_FAILING = 2, 10
    drifting, calm = seen("DRIFT"), seen("CALM")
    now = datetime.now(UTC)
    old = ReconciliationRun.objects.create(trigger="command", status="done", created_at=ago(99), finished_at=ago(98))
    run = ReconciliationRun.objects.create(trigger="command", status="done", created_at=now, finished_at=now)
    for r, kind, explained in [
        (run, "gap", None),
        (run, "counter_drift", None),
        (run, "stale", now),  # explained: looked at already
        (run, "in_flight", None),  # resolves itself
        (old, "gap", None),  # an earlier run's
    ]:
        Discrepancy.objects.create(run=r, terminal_code="DRIFT", entity_type=kind, kind=kind, terminal_count=3,
                                   central_count=1, recount=1, delta=2, explained_at=explained)  # fmt: skip
    health = terminal_health()
    assert (health[drifting.pk].drift, health[drifting.pk].level) == (2, "degraded")
    assert "2 open reconciliation discrepancies" in health[drifting.pk].reasons
    assert (health[calm.pk].drift, health[calm.pk].level) == (0, "healthy")


def test_health_of_all_terminals_takes_a_fixed_number_of_queries():
    for i in range(3):
        processed(seen(f"Q{i}"), 2)
    with CaptureQueriesContext(connection) as small:
        terminal_health()
    for i in range(3, 30):
        t = seen(f"Q{i}")
        processed(t, 2)
        MessageFactory(terminal=t, received_at=ago(30))
    with CaptureQueriesContext(connection) as large:
        result = terminal_health()
    assert len(result) == 30
    assert len(large) == len(small) <= 5


def test_summary_and_badge():
    ok, bad = seen("A"), seen("B", 99999)
    healths = terminal_health()
    assert terminal_health_summary(healths=healths) == {"healthy": 1, "degraded": 0, "failing": 1}
    assert terminal_health_summary() == {"healthy": 0, "degraded": 0, "failing": 0}  # no snapshot yet
    terminal_health_snapshot_write()
    assert terminal_health_summary() == {"healthy": 1, "degraded": 0, "failing": 1}
    assert terminal_health_snapshot() == [("A", "healthy"), ("B", "failing")]
    html = Template(
        "{% load terminal_health %}{% terminal_health_badge healths t %}|{% terminal_health_badge healths 0 %}"
    )
    out = html.render(Context({"healths": healths, "t": bad}))
    assert 'class="health-badge health-failing"' in out and "no heartbeat for" in out
    assert "health-unknown" in out
    assert Message.objects.count() == 0
    assert 'health-healthy"' in html.render(Context({"healths": healths, "t": ok}))
