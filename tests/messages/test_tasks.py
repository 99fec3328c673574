import time
from datetime import UTC, datetime, timedelta

import pytest

from messages import services, tasks
from messages.models import Message, MessageState
from tests.messages.test_services import env

S = MessageState
pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks, "async_task", lambda func, **kw: calls.append(func))
    return calls


def test_drain_processes_everything_due(terminal, settings, enqueued):
    settings.SYNC_CLAIM_BATCH = 7
    services.message_ingest_batch(terminal=terminal, envelopes=[env(str(i), f"K{i}") for i in range(30)])
    totals = tasks.drain()
    assert totals["claimed"] == 30 and totals["processed"] == 30
    assert not Message.objects.exclude(state=S.PROCESSED).exists()
    assert enqueued == []  # finished inside its budget: no hand-over


def test_drain_hands_over_when_its_time_budget_is_spent(terminal, enqueued):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a")])
    totals = tasks.drain(max_seconds=0)
    assert totals["claimed"] == 0
    assert enqueued == [tasks.DRAIN_TASK]
    assert Message.objects.get().state == S.RECEIVED


def test_sweep_wakes_drains_for_due_work_and_expired_leases(terminal, settings, enqueued):
    settings.SYNC_WORKERS, settings.SYNC_CLAIM_BATCH = 3, 10
    assert tasks.sweep() == 0 and enqueued == []
    services.message_ingest_batch(terminal=terminal, envelopes=[env(str(i), f"K{i}") for i in range(25)])
    assert tasks.sweep() == 25
    assert enqueued == [tasks.DRAIN_TASK] * 3
    # a lost wake-up for a message whose worker died: the sweep still finds it
    services.message_claim(worker="dead", limit=100)
    enqueued.clear()
    assert tasks.sweep() == 0
    Message.objects.filter(pk=Message.objects.first().pk).update(lease_expires_at=datetime.now(UTC) - timedelta(1))
    assert tasks.sweep() == 1 and enqueued == [tasks.DRAIN_TASK]


def test_sweep_schedule_exists_after_migrate(db):
    from django_q.models import Schedule

    sweep = Schedule.objects.get(name="sync-sweep")
    assert (sweep.func, sweep.schedule_type, sweep.minutes) == ("messages.tasks.sweep", Schedule.MINUTES, 1)


def test_drain_survives_a_batch_whose_lease_was_taken_over(terminal, monkeypatch, enqueued):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a"), env("b", "B")])
    real_claim = services.message_claim
    calls = []

    def claim_then_lose_lease(**kw):
        batch = real_claim(**kw)
        if batch and not calls:
            calls.append(1)
            Message.objects.filter(pk=batch[0].pk).update(lease_owner="someone-else")
        return batch

    monkeypatch.setattr(services, "message_claim", claim_then_lose_lease)
    totals = tasks.drain()
    assert totals["claimed"] == 2 and totals["processed"] == 0  # the whole batch rolled back
    states = set(Message.objects.values_list("state", flat=True))
    assert states == {S.PROCESSING}


def test_drain_stays_for_a_lease_that_runs_out_within_its_budget(terminal, enqueued):
    """Regression (chaos suite, worker crash): a worker killed mid-batch left its messages leased;
    the other drains ran dry and left before the lease ran out, and the next sweep task was lost
    with a killed cluster, so the messages waited two minutes. A drain now stays for such a lease."""
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a")])
    services.message_claim(worker="dead", limit=10)
    Message.objects.update(lease_expires_at=datetime.now(UTC) + timedelta(seconds=1))
    started = time.monotonic()
    totals = tasks.drain(max_seconds=5)
    assert totals["claimed"] == 1 and totals["processed"] == 1
    assert 0.5 < time.monotonic() - started < 4
    m = Message.objects.get()
    assert m.state == S.PROCESSED and m.attempts == 2  # the dead worker's attempt is on the record


def test_drain_does_not_wait_for_a_lease_beyond_its_budget(terminal, enqueued):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a")])
    services.message_claim(worker="busy", limit=10)  # a live worker's lease: 60 s by default
    started = time.monotonic()
    totals = tasks.drain(max_seconds=5)
    assert totals["claimed"] == 0 and time.monotonic() - started < 1
    assert Message.objects.get().state == S.PROCESSING and enqueued == []
