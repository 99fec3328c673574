from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from messages.models import EntityCounter, Message, MessageState
from messages.outbound import update_fetch
from reconciliation import reports, selectors, services, tasks
from reconciliation.models import Discrepancy, ReconciliationRun, ReportedCount, RunStatus, RunTrigger
from reconciliation.selectors import Report
from syncadmin.models import AuditEntry
from tests.factories import TerminalFactory
from tests.reconciliation.helpers import drain_all, env, ingest

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
BEFORE = NOW - timedelta(minutes=10)  # terminal clock: changes made before the report
AS_OF = NOW - timedelta(minutes=5)  # the report's time
AFTER = NOW - timedelta(minutes=1)  # changes made after the report


def run():
    return services.run_now(trigger=RunTrigger.COMMAND, triggered_by="test")


def report(terminal, count, entity="product", as_of=AS_OF):
    reports.reported_counts_store(terminal=terminal, counts=[(entity, count, as_of)])


def found(run, terminal, entity="product"):
    return Discrepancy.objects.filter(run=run, terminal_code=terminal.code, entity_type=entity).first()


def cell(run, terminal, entity="product"):
    matrix = ReconciliationRun.objects.get(pk=run.pk).matrix
    return matrix["rows"][terminal.code][matrix["entity_types"].index(entity)]


def upserts(terminal, n, created_at=BEFORE, prefix="K", entity="product"):
    ingest(terminal, *[env(f"{prefix}{i}", f"{prefix}{i}", entity=entity, created_at=created_at) for i in range(n)])


# --- the pure rule --------------------------------------------------------------------------------

STALE_BEFORE = NOW - timedelta(hours=1)
FRESH = NOW - timedelta(minutes=1)


@pytest.mark.parametrize(
    "counter,recount,reported,received,in_flight,kind,state,delta",
    [
        (5, 5, 5, FRESH, 0, None, "e", 0),
        (5, 5, None, None, 3, None, "n", 0),  # never reported: nothing to compare
        (5, 5, 7, FRESH, 2, "in_flight", "i", 2),
        (5, 5, 3, FRESH, 2, "in_flight", "i", -2),  # deletes in flight count too
        (5, 5, 8, FRESH, 2, "gap", "g", 3),
        (5, 5, 2, FRESH, 0, "gap", "g", -3),
        (5, 5, 9, STALE_BEFORE - timedelta(seconds=1), 0, "stale", "s", 4),
        (5, 4, 5, FRESH, 0, "counter_drift", "d", 0),  # drift wins over everything else
        (5, 4, 9, STALE_BEFORE - timedelta(days=1), 0, "counter_drift", "d", 4),
    ],
)
def test_cell_classify(counter, recount, reported, received, in_flight, kind, state, delta):
    rep = Report(reported, AS_OF, received) if reported is not None else None
    verdict = services.cell_classify(
        counter=counter, recount=recount, report=rep, in_flight=in_flight, stale_before=STALE_BEFORE
    )
    assert (verdict.kind, verdict.state, verdict.delta) == (kind, state, delta)


# --- whole runs against the real engine -------------------------------------------------------------


def test_equal_counts_give_no_discrepancy(terminal):
    upserts(terminal, 3)
    drain_all()
    report(terminal, 3)
    r = run()
    assert r.status == RunStatus.DONE and r.cells_checked == 1
    assert not Discrepancy.objects.filter(run=r).exists()
    assert cell(r, terminal) == ["e", 3, 3, 0, 3]
    assert selectors.discrepancy_open_count() == 0


def test_difference_explained_by_in_flight_messages_only_is_not_flagged(terminal):
    upserts(terminal, 3)
    drain_all()
    upserts(terminal, 2, prefix="N")  # accepted before the report, not applied yet
    report(terminal, 5)
    r = run()
    d = found(r, terminal)
    assert (d.kind, d.terminal_count, d.central_count, d.in_flight, d.delta) == ("in_flight", 5, 3, 2, 2)
    assert r.gap_count == 0 and r.in_flight_count == 1
    assert selectors.discrepancy_open_count() == 0  # amber, nobody needs to act
    assert cell(r, terminal)[0] == "i"


def test_changes_applied_after_the_report_count_as_in_flight(terminal):
    upserts(terminal, 2)
    upserts(terminal, 3, prefix="L", created_at=AFTER)  # made after the report: centre is ahead
    drain_all()
    report(terminal, 2)
    d = found(run(), terminal)
    assert (d.kind, d.delta, d.in_flight) == ("in_flight", -3, 3)


def test_real_gap_is_flagged_with_the_right_delta(terminal):
    upserts(terminal, 4)
    drain_all()
    upserts(terminal, 1, prefix="P")  # one in flight
    report(terminal, 8)  # the terminal has 8: 4 applied + 1 in flight leaves 3 missing
    r = run()
    d = found(r, terminal)
    assert (d.kind, d.terminal_count, d.central_count, d.in_flight, d.delta) == ("gap", 8, 4, 1, 4)
    assert r.gap_count == 1 and selectors.discrepancy_open_count() == 1
    assert cell(r, terminal) == ["g", 4, 8, 1, 4]


def test_dead_lettered_change_is_a_gap_not_in_flight(terminal):
    upserts(terminal, 2)
    ingest(terminal, env("bad", "X", created_at=BEFORE, payload=[1, 2]))  # dead-lettered: never applied
    drain_all()
    assert Message.objects.get(message_id="bad").state == MessageState.DEAD_LETTERED
    report(terminal, 3)
    d = found(run(), terminal)
    assert (d.kind, d.delta, d.in_flight) == ("gap", 1, 0)


def test_in_flight_after_the_report_does_not_excuse_a_gap(terminal):
    upserts(terminal, 2)
    drain_all()
    upserts(terminal, 3, prefix="Q", created_at=AFTER)  # not applied, made after the report
    report(terminal, 4)
    d = found(run(), terminal)
    assert (d.kind, d.delta, d.in_flight) == ("gap", 2, 0)


def test_stale_report_is_flagged_not_compared(terminal, settings):
    settings.RECONCILIATION_STALE_SECONDS = 600
    upserts(terminal, 2)
    drain_all()
    report(terminal, 9, as_of=NOW - timedelta(hours=2))
    ReportedCount.objects.update(received_at=NOW - timedelta(hours=2))
    r = run()
    d = found(r, terminal)
    assert (d.kind, d.delta) == ("stale", 7)
    assert r.stale_count == 1 and r.gap_count == 0
    assert cell(r, terminal)[0] == "s"


def test_latest_report_wins(terminal):
    upserts(terminal, 2)
    drain_all()
    report(terminal, 7, as_of=AS_OF - timedelta(minutes=1))
    report(terminal, 2, as_of=AS_OF)
    report(terminal, 9, as_of=AS_OF - timedelta(minutes=2))
    assert selectors.reported_latest()[(terminal.code, "product")].count == 2
    assert found(run(), terminal) is None


def test_counter_drift_is_flagged_and_recount_fixes_it_audited(terminal):
    upserts(terminal, 3)
    upserts(terminal, 2, prefix="S", entity="sale")
    drain_all()
    report(terminal, 3)
    EntityCounter.objects.filter(entity_type="product").update(live_count=10)  # a bug moved it
    EntityCounter.objects.filter(entity_type="sale").delete()  # or lost the row
    r = run()
    d = found(r, terminal)
    assert (d.kind, d.central_count, d.recount) == ("counter_drift", 10, 3)
    assert found(r, terminal, "sale").kind == "counter_drift"
    assert cell(r, terminal)[0] == "d"
    changes = services.counter_rebuild(actor="user:ann", terminal_code=terminal.code, reason="bug 12")
    assert changes == {(terminal.code, "product"): (10, 3), (terminal.code, "sale"): (0, 2)}
    assert dict(EntityCounter.objects.values_list("entity_type", "live_count")) == {"product": 3, "sale": 2}
    audit = AuditEntry.objects.get(action="reconciliation.recount")
    assert (audit.actor, audit.count, audit.reason) == ("user:ann", 2, "bug 12")
    assert run().counter_drift_count == 0


def test_recount_is_scoped(db):
    a, b = TerminalFactory(code="A1"), TerminalFactory(code="B1")
    upserts(a, 2)
    upserts(b, 2)
    drain_all()
    EntityCounter.objects.update(live_count=0)
    assert services.counter_rebuild(actor="x", terminal_code="A1", entity_type="product") == {("A1", "product"): (0, 2)}
    assert dict(EntityCounter.objects.values_list("terminal_code", "live_count")) == {"A1": 2, "B1": 0}


def test_explanation_is_kept_while_the_numbers_stay_the_same(terminal):
    upserts(terminal, 2)
    drain_all()
    report(terminal, 5)
    d = found(run(), terminal)
    with pytest.raises(services.ReconciliationError):
        services.discrepancy_explain(discrepancy=d, actor="user:sue", note="  ")
    services.discrepancy_explain(discrepancy=d, actor="user:sue", note="store lost 3 receipts")
    assert selectors.discrepancy_open_count() == 0
    again = found(run(), terminal)
    assert (again.explained_by, again.note) == ("user:sue", "store lost 3 receipts")
    assert AuditEntry.objects.filter(action="reconciliation.explain", actor="user:sue").count() == 1
    report(terminal, 6, as_of=NOW)  # the numbers changed: the old explanation no longer applies
    changed = found(run(), terminal)
    assert changed.delta == 4 and changed.explained_at is None
    assert selectors.discrepancy_open_count() == 1


def test_matrix_covers_every_terminal_and_type(db):
    a, b = TerminalFactory(code="A1"), TerminalFactory(code="B1")
    TerminalFactory(code="C1")  # no data at all: an empty row
    upserts(a, 1)
    upserts(b, 1, entity="sale")
    drain_all()
    r = run()
    m = ReconciliationRun.objects.get(pk=r.pk).matrix
    assert m["terminals"] == ["A1", "B1", "C1"] and m["entity_types"] == ["product", "sale"]
    assert m["rows"]["A1"] == [["n", 1, None, 0, 1], None]
    assert m["rows"]["C1"] == [None, None]
    assert (r.terminals_checked, r.entity_types_checked, r.cells_checked) == (3, 2, 2)
    second = run()
    assert ReconciliationRun.objects.get(pk=r.pk).matrix is None  # only the latest keeps it
    assert ReconciliationRun.objects.get(pk=second.pk).matrix == m


def test_resync_request_reaches_the_terminal_through_fetch_updates(terminal):
    other = TerminalFactory(code="T0002")
    with pytest.raises(services.ReconciliationError):
        services.resync_request(terminal=terminal, entity_type="Bad Type!", actor="user:sue")
    services.resync_request(terminal=terminal, entity_type="product", actor="user:sue", reason="gap of 3")
    assert update_fetch(terminal=other, max_count=10) == []  # only the terminal asked
    (update,) = update_fetch(terminal=terminal, max_count=10)
    assert (update.update_type, update.entity_key) == ("resync.request", "product")
    assert '"entity_type": "product"' in update.payload
    audit = AuditEntry.objects.get(action="reconciliation.resync")
    assert (audit.actor, audit.object_id, audit.detail["update_id"]) == ("user:sue", terminal.code, update.update_id)


def test_console_run_is_queued_then_executed_by_the_task(terminal, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(services, "run_enqueue", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        r = services.run_request(actor="user:ann")
    assert queued == [r.pk] and r.status == RunStatus.QUEUED
    assert AuditEntry.objects.filter(action="reconciliation.run", actor="user:ann").exists()
    tasks.execute(r.pk)
    r.refresh_from_db()
    assert r.status == RunStatus.DONE and r.trigger == "console" and r.finished_at and r.duration_ms is not None
    tasks.execute(r.pk)  # a redelivered task changes nothing
    assert ReconciliationRun.objects.get(pk=r.pk).finished_at == r.finished_at


def test_scheduled_task_runs_and_prunes(terminal, settings):
    settings.RECONCILIATION_RETENTION_DAYS = 7
    old = services.run_now(trigger=RunTrigger.SCHEDULE, triggered_by="schedule")
    ReconciliationRun.objects.filter(pk=old.pk).update(created_at=NOW - timedelta(days=8))
    lost = services.run_create(trigger=RunTrigger.CONSOLE, triggered_by="user:x")
    ReconciliationRun.objects.filter(pk=lost.pk).update(created_at=NOW - timedelta(hours=2))
    report(terminal, 1, as_of=NOW - timedelta(days=3))  # old and not the latest: pruned
    report(terminal, 2, as_of=NOW - timedelta(days=2))  # old but the latest: kept
    report(terminal, 9, entity="sale", as_of=NOW)
    ReportedCount.objects.filter(as_of__lt=NOW - timedelta(days=1)).update(received_at=NOW - timedelta(days=2))
    pk = tasks.scheduled()
    assert sorted(ReportedCount.objects.values_list("entity_type", "count")) == [("product", 2), ("sale", 9)]
    assert ReconciliationRun.objects.get(pk=pk).trigger == "schedule"
    assert not ReconciliationRun.objects.filter(pk=old.pk).exists()
    lost.refresh_from_db()
    assert lost.status == RunStatus.FAILED and "abandoned" in lost.error


def test_failed_run_is_recorded(terminal, monkeypatch):
    def boom():
        raise RuntimeError("central store unreachable")

    monkeypatch.setattr(selectors, "counter_values", boom)
    with pytest.raises(RuntimeError):
        run()
    r = ReconciliationRun.objects.get()
    assert r.status == RunStatus.FAILED and "central store unreachable" in r.error


def test_reconcile_command_prints_summary_and_exit_code(terminal, monkeypatch, capsys):
    upserts(terminal, 2)
    drain_all()
    report(terminal, 5)
    call_command("reconcile")
    out = capsys.readouterr().out
    assert "checked 1 terminals x 1 entity types" in out
    assert "counter_drift=0 gap=1 in_flight=0 stale=0" in out
    monkeypatch.setattr(selectors, "counter_values", lambda: 1 / 0)
    with pytest.raises(CommandError, match="ZeroDivisionError"):
        call_command("reconcile")


def test_reported_counts_store_accepts_tuples_and_count_reports_and_refuses_bad_ones(terminal):
    assert (
        reports.reported_counts_store(
            terminal=terminal, counts=[("product", 3, AS_OF), reports.CountReport("sale", 0, AS_OF)]
        )
        == 2
    )
    for bad in [("", 1, AS_OF), ("x" * 41, 1, AS_OF), ("product", -1, AS_OF), ("product", 1, None)]:
        with pytest.raises(reports.InvalidCountReport):
            reports.reported_counts_store(terminal=terminal, counts=[("product", 1, AS_OF), bad])
    assert ReportedCount.objects.count() == 2  # nothing of a refused report is stored


def test_a_count_dated_in_the_future_is_refused_whole_and_does_not_pin_the_latest(terminal, settings):
    assert settings.SYNC_MAX_CLOCK_SKEW_SECONDS == 900  # the contract's default
    now = datetime.now(UTC)
    far = datetime(9999, 12, 31, tzinfo=UTC)
    for future in [far, now + timedelta(seconds=960)]:
        with pytest.raises(reports.InvalidCountReport, match="AsOf .* is in the future: more than 900 s ahead"):
            reports.reported_counts_store(terminal=terminal, counts=[("product", 1, AS_OF), ("stock", 5, future)])
    assert not ReportedCount.objects.exists()  # nothing of a refused report is stored
    # Within the allowance (a terminal clock a little fast) it is a report like any other...
    report(terminal, 4, as_of=now + timedelta(seconds=840))
    # ...and a later report still becomes the latest one once its time comes.
    report(terminal, 6, as_of=now + timedelta(seconds=850))
    assert selectors.reported_latest()[(terminal.code, "product")].count == 6


def test_the_clock_skew_allowance_follows_the_setting(terminal, settings):
    settings.SYNC_MAX_CLOCK_SKEW_SECONDS = 60
    with pytest.raises(reports.InvalidCountReport, match="more than 60 s ahead"):
        report(terminal, 1, as_of=datetime.now(UTC) + timedelta(seconds=120))
    settings.SYNC_MAX_CLOCK_SKEW_SECONDS = 300
    report(terminal, 1, as_of=datetime.now(UTC) + timedelta(seconds=120))
    assert ReportedCount.objects.count() == 1
