"""The retention purge: what goes, what always stays, batches, run records, the console page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django_q.models import Schedule

from messages import services, tasks
from messages.models import CentralEntity, DeadLetter, EntityCounter, Message, MessageEvent, MessageState, PurgeRun
from messages.services import retention as services_retention
from messages.services.retention import purge_run
from tests.conftest import database_vendor
from tests.factories import DeadLetterFactory, MessageFactory, PurgeRunFactory
from tests.messages.helpers import drain_all, env

S = MessageState
pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)  # older than SYNC_RETENTION_DAYS (30)
RECENT = NOW - timedelta(days=5)


def with_events(message, n=2):
    MessageEvent.objects.bulk_create(
        [MessageEvent(message=message, from_state="", to_state=message.state, at=OLD, actor="t") for _ in range(n)]
    )
    return message


def old(state, **kwargs):
    return with_events(MessageFactory(state=state, updated_at=OLD, received_at=OLD, **kwargs))


def exists(m):
    return Message.objects.filter(pk=m.pk).exists()


def test_old_processed_and_discarded_go_with_their_events_everything_else_stays():
    gone = [old(S.PROCESSED), old(S.DISCARDED)]
    kept = [
        with_events(MessageFactory(state=S.PROCESSED, updated_at=RECENT)),
        with_events(MessageFactory(state=S.DISCARDED, updated_at=RECENT)),
        *(old(state) for state in (S.RECEIVED, S.PROCESSING, S.FAILED, S.DEAD_LETTERED)),
    ]
    run = purge_run(pause_seconds=0)
    assert (run.messages_removed, run.events_removed, run.deadletters_removed) == (2, 4, 0)
    assert not any(exists(m) for m in gone)
    assert not MessageEvent.objects.filter(message_id__in=[m.pk for m in gone]).exists()
    assert all(exists(m) for m in kept)
    assert MessageEvent.objects.count() == 2 * len(kept)


def test_unresolved_dead_letters_are_never_purged_whatever_their_age():
    open_dl = DeadLetterFactory(
        message__updated_at=OLD - timedelta(days=900), dead_lettered_at=OLD - timedelta(days=900)
    )
    # Even a finished message keeps an open dead letter (defensive: the rule is "until resolved").
    odd = DeadLetterFactory(message__state=S.PROCESSED, message__updated_at=OLD, dead_lettered_at=OLD)
    purge_run(pause_seconds=0)
    assert exists(open_dl.message) and exists(odd.message)
    assert DeadLetter.objects.count() == 2


def test_resolved_dead_letters_are_kept_for_their_own_retention(settings):
    settings.SYNC_DEADLETTER_RETENTION_DAYS = 60

    def resolved(resolved_at, state):
        return DeadLetterFactory(
            message__state=state, message__updated_at=OLD, resolution="discarded", resolved_at=resolved_at
        )

    long_ago = resolved(NOW - timedelta(days=90), S.DISCARDED)
    retried_long_ago = resolved(NOW - timedelta(days=90), S.PROCESSED)
    lately = resolved(NOW - timedelta(days=45), S.DISCARDED)  # older than 30, younger than 60 days
    run = purge_run(pause_seconds=0)
    assert run.messages_removed == 2 and run.deadletters_removed == 2
    assert not exists(long_ago.message) and not exists(retried_long_ago.message)
    assert exists(lately.message) and DeadLetter.objects.filter(pk=lately.pk).exists()


def test_purge_never_touches_the_central_store_or_counters(terminal):
    batch = [env(f"m{i}", key=f"SKU-{i % 3}", seq=i) for i in range(1, 10)]
    services.message_ingest_batch(terminal=terminal, envelopes=batch)
    Message.objects.update(next_attempt_at=NOW - timedelta(seconds=1))
    drain_all()
    assert Message.objects.filter(state=S.PROCESSED).count() == 9
    central = list(CentralEntity.objects.order_by("pk").values())
    counters = list(EntityCounter.objects.order_by("pk").values())
    assert central and counters
    Message.objects.update(updated_at=OLD)
    run = purge_run(pause_seconds=0)
    assert run.messages_removed == 9 and not Message.objects.exists() and not MessageEvent.objects.exists()
    assert list(CentralEntity.objects.order_by("pk").values()) == central
    assert list(EntityCounter.objects.order_by("pk").values()) == counters


def test_purge_works_in_batches_and_records_the_run():
    for _ in range(5):
        old(S.PROCESSED)
    run = purge_run(batch_size=2, pause_seconds=0, trigger="test")
    assert (run.batches, run.messages_removed, run.events_removed, run.more) == (3, 5, 10, False)
    assert run.finished_at is not None and run.duration_ms >= 0 and run.trigger == "test"
    assert run.cutoff < NOW - timedelta(days=29)


def test_a_run_stops_at_its_budget_and_says_more_is_left():
    for _ in range(5):
        old(S.PROCESSED)
    run = purge_run(batch_size=2, pause_seconds=0, max_batches=1)
    assert (run.messages_removed, run.more) == (2, True)
    assert Message.objects.count() == 3


def test_only_one_run_at_a_time():
    old(S.PROCESSED)
    PurgeRunFactory(finished_at=None, started_at=NOW - timedelta(minutes=1))
    assert purge_run(pause_seconds=0) is None
    assert Message.objects.count() == 1
    # A run that never finished long ago lost its worker: it does not block forever.
    PurgeRun.objects.update(started_at=NOW - timedelta(hours=2))
    assert purge_run(pause_seconds=0).messages_removed == 1


def test_the_task_queues_a_follow_up_when_more_is_left(monkeypatch, settings):
    settings.SYNC_RETENTION_BATCH = 2
    settings.SYNC_RETENTION_RUN_SECONDS = 0
    settings.SYNC_RETENTION_PAUSE_SECONDS = 0
    for _ in range(3):
        old(S.PROCESSED)
    queued = []
    monkeypatch.setattr(tasks, "async_task", lambda *a, **k: queued.append(a))
    assert tasks.purge() == 2
    assert queued == [(tasks.PURGE_TASK, "continuation")]
    assert tasks.purge("continuation") == 1 and len(queued) == 1


def test_purge_command(capsys):
    old(S.DISCARDED)
    from django.core.management import call_command

    call_command("purge_messages", "--until-done")
    assert "removed 1 message(s)" in capsys.readouterr().out
    assert not Message.objects.exists()


def test_schedules_exist_after_migrate():
    from syncadmin.lib.schedules import ensure_schedules

    ensure_schedules()
    purge = Schedule.objects.get(name="sync-retention-purge")
    assert purge.func == "messages.tasks.purge" and purge.minutes == 15
    assert Schedule.objects.get(name="sync-bulk-jobs-resume").func == "messages.tasks.bulk_jobs_resume"


def test_retention_page_lists_runs(login_as):
    PurgeRunFactory(messages_removed=4321)
    PurgeRunFactory(error="OperationalError: gone", messages_removed=0)
    client = login_as("Viewers")
    page = client.get("/retention/")
    assert page.status_code == 200
    assert b"4,321" in page.content or b"4321" in page.content
    assert b"failed" in page.content and b"30 days" in page.content
    assert b'href="/retention/"' in page.content  # in the console nav
    partial = client.get("/retention/", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b"purge-run-table" in partial.content


@pytest.mark.postgres
def test_candidate_query_uses_the_state_updated_index():
    old(S.PROCESSED)
    cutoffs = services_retention.retention_cutoffs()
    qs = services_retention.purge_candidates(cutoffs=cutoffs).values_list("pk", flat=True)[:1000]
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a tiny test table: ask whether the index *can* serve it
        sql, params = qs.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(r[0] for r in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "message_state_updated_idx" in plan, plan
    assert database_vendor() == "postgresql"


def test_metrics_state_counts_stay_exact_through_a_purge(terminal):
    """/metrics counts messages per state from transitions: a purge must take its rows out too."""
    from messages.metrics import message_state_counts

    services.message_ingest_batch(terminal=terminal, envelopes=[env(f"p{i}", key=f"K{i}") for i in range(6)])
    drain_all()
    assert message_state_counts()[S.PROCESSED] == Message.objects.filter(state=S.PROCESSED).count() == 6
    Message.objects.filter(pk__in=list(Message.objects.order_by("pk").values_list("pk", flat=True)[:4])).update(
        updated_at=OLD
    )
    purge_run(pause_seconds=0)
    counts = message_state_counts()
    assert Message.objects.count() == 2
    for state in S.values:
        assert counts[state] == Message.objects.filter(state=state).count(), state
