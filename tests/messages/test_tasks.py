import logging
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from messages import drain_slots, services, tasks
from messages.handlers import registry
from messages.models import CentralEntity, DeadLetter, EntityCounter, Message, MessageEvent, MessageState
from messages.services import failures, processing, wakeup
from syncadmin.lib.clock import db_now
from tests.messages.helpers import env

S = MessageState
pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(wakeup, "async_task", lambda func, **kw: calls.append(func))
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
    assert enqueued == [wakeup.DRAIN_TASK]
    assert Message.objects.get().state == S.RECEIVED


def test_sweep_wakes_drains_for_due_work_and_expired_leases(terminal, settings, enqueued):
    settings.SYNC_WORKERS, settings.SYNC_CLAIM_BATCH = 3, 10
    assert tasks.sweep() == 0 and enqueued == []
    services.message_ingest_batch(terminal=terminal, envelopes=[env(str(i), f"K{i}") for i in range(25)])
    assert tasks.sweep() == 25
    assert enqueued == [wakeup.DRAIN_TASK] * 3
    # a lost wake-up for a message whose worker died: the sweep still finds it
    services.message_claim(worker="dead", limit=100)
    enqueued.clear()
    assert tasks.sweep() == 0
    Message.objects.filter(pk=Message.objects.first().pk).update(lease_expires_at=datetime.now(UTC) - timedelta(1))
    assert tasks.sweep() == 1 and enqueued == [wakeup.DRAIN_TASK]


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


# --- an error the batch does not handle (issue 15) ---------------------------------------------------


@pytest.fixture
def poisoned_observability(monkeypatch):
    """The engine's observability code raising for any batch that holds the message "poison": an error
    from inside the batch machinery, which no handler raised (what message_process_batch leaves alone)."""
    from messages import metrics as observe

    real = observe.batch_finished

    def batch_finished(*, messages, **kwargs):
        if any(m.message_id == "poison" for m in messages):
            raise RuntimeError("metric label exploded")
        return real(messages=messages, **kwargs)

    monkeypatch.setattr(observe, "batch_finished", batch_finished)


def test_an_error_the_batch_does_not_handle_releases_it_at_once_and_the_drain_goes_on(
    terminal, settings, caplog, enqueued, poisoned_observability
):
    """Regression (issue 15): an error escaping the batch ended the drain task, and every message of the
    batch stayed Processing until its lease ran out (60 s). Now it is logged once with its traceback,
    the others are applied one at a time, and the one that still fails is released at once (due, its
    attempt counted): the drain takes it up again at once, and dead-letters it at SYNC_MAX_ATTEMPTS."""
    settings.SYNC_MAX_ATTEMPTS = 3
    services.message_ingest_batch(
        terminal=terminal,
        envelopes=[env("a", "A"), env("poison", "P"), env("unknown", "U", mtype="promo.apply"), env("b", "B")],
    )
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        totals = tasks.drain(max_seconds=30)
    assert time.monotonic() - started < 15  # not a lease (60 s) in sight
    states = dict(Message.objects.values_list("message_id", "state"))
    assert states == {"a": S.PROCESSED, "b": S.PROCESSED, "unknown": S.DEAD_LETTERED, "poison": S.DEAD_LETTERED}
    assert totals["claimed"] == 4 + 2 and totals["released"] == 3
    # nothing applied twice: one Processed event each, one central row each, counted once
    done = MessageEvent.objects.filter(to_state=S.PROCESSED).values_list("message__message_id", flat=True)
    assert sorted(done) == ["a", "b"]
    assert CentralEntity.objects.count() == 2 and EntityCounter.objects.get().live_count == 2
    poison = Message.objects.get(message_id="poison")
    assert poison.attempts == 3 and poison.lease_owner == ""
    moves = list(poison.events.values_list("from_state", "to_state", "attempt"))
    assert moves == [
        ("", S.RECEIVED, 0),
        (S.RECEIVED, S.PROCESSING, 1),
        (S.PROCESSING, S.FAILED, 1),  # released at once, due again
        (S.FAILED, S.PROCESSING, 2),
        (S.PROCESSING, S.FAILED, 2),
        (S.FAILED, S.PROCESSING, 3),
        (S.PROCESSING, S.DEAD_LETTERED, 3),
    ]
    released = poison.events.filter(to_state=S.FAILED).first()
    assert released.error_class == "RuntimeError" and "metric label exploded" in released.reason
    assert "did not handle" in released.reason and "Traceback" in released.traceback
    dead = DeadLetter.objects.get(message=poison)
    assert dead.error_class == "RuntimeError" and "gave up after 3 attempts" in dead.reason
    # logged: once per failed batch, with its traceback (the first batch, then the poison alone twice)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3 and all(r.exc_info and "metric label exploded" in str(r.exc_info[1]) for r in errors)
    assert enqueued == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_connection_is_killed_is_released_once_the_database_answers(terminal, settings, enqueued):
    """A real lost connection mid-batch (the handler's own backend terminated, as a database restart or a
    failover does): the batch rolls back, its claim had committed. The drain used to die with it and
    leave the batch Processing for its lease; now it reconnects, applies the others alone, and releases
    the one that kills its connection, with backoff (a database failure), until it used its attempts."""
    settings.SYNC_MAX_ATTEMPTS = 2

    @registry.register("cut.upsert")
    def cut(item):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    try:
        services.message_ingest_batch(
            terminal=terminal, envelopes=[env("a", "A"), env("cut", "C", mtype="cut.upsert"), env("b", "B")]
        )
        started = time.monotonic()
        totals = tasks.drain(max_seconds=30)
        assert time.monotonic() - started < 20
        states = dict(Message.objects.values_list("message_id", "state"))
        assert states == {"a": S.PROCESSED, "b": S.PROCESSED, "cut": S.FAILED}
        assert (totals["processed"], totals["released"]) == (2, 1)
        m = Message.objects.get(message_id="cut")
        assert m.attempts == 1 and m.lease_owner == ""
        backoff = (m.next_attempt_at - db_now()).total_seconds()
        assert 0 < backoff <= settings.SYNC_BACKOFF_BASE_SECONDS  # seconds, not a lease
        released = m.events.get(to_state=S.FAILED)
        assert released.error_class == "OperationalError" and "terminat" in released.reason
        Message.objects.filter(pk=m.pk).update(next_attempt_at=db_now())
        totals = tasks.drain(max_seconds=30)
        assert totals["released"] == 1
    finally:
        registry.unregister("cut.upsert")
    assert Message.objects.get(message_id="cut").state == S.DEAD_LETTERED  # its attempts used
    assert CentralEntity.objects.count() == 2 and EntityCounter.objects.get().live_count == 2
    done = MessageEvent.objects.filter(to_state=S.PROCESSED).values_list("message__message_id", flat=True)
    assert sorted(done) == ["a", "b"]


def test_a_failing_database_stops_the_drain_and_its_batch_waits_the_backoff(terminal, settings, monkeypatch, enqueued):
    """The central store is down, the hub's database is not: the release works, but the drain must not
    go on claiming batch after batch (each would spend an attempt of every message in it within
    seconds). It releases its batch with backoff and stops; the rest waits, untouched."""
    from django.db import OperationalError

    settings.SYNC_CLAIM_BATCH = 3
    services.message_ingest_batch(terminal=terminal, envelopes=[env(k, k) for k in "ABCDEF"])
    calls = []

    def central_down(messages, worker):
        calls.append(len(messages))
        raise OperationalError("could not connect to the central store")

    monkeypatch.setattr(processing, "_process_batch_once", central_down)
    totals = tasks.drain(max_seconds=10)
    assert (totals["claimed"], totals["released"]) == (3, 3)
    assert calls == [3, 1]  # the batch, then its first message alone: no other was tried
    now = db_now()
    released = Message.objects.filter(state=S.FAILED)
    assert released.count() == 3 and all(m.attempts == 1 and m.next_attempt_at > now for m in released)
    assert Message.objects.filter(state=S.RECEIVED).count() == 3  # never claimed


def test_when_not_even_the_release_reaches_the_database_the_lease_brings_the_batch_back(
    terminal, monkeypatch, caplog, enqueued
):
    """The database went away mid-batch and stays away: the release fails too. The drain ends cleanly
    (it used to die with the error), and the messages keep their lease, which brings them back."""
    from django.db import OperationalError

    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A"), env("b", "B")])

    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(processing, "_process_batch_once", unreachable)
    real_transition = failures.message_transition

    def transition(**kwargs):
        if kwargs["to_state"] == S.FAILED:
            unreachable()
        return real_transition(**kwargs)

    monkeypatch.setattr(failures, "message_transition", transition)
    with caplog.at_level(logging.WARNING):
        totals = tasks.drain(max_seconds=5)
    assert totals["claimed"] == 2 and totals["released"] == 0
    rows = list(Message.objects.values_list("state", "attempts", "lease_owner"))
    assert [(state, attempts) for state, attempts, _ in rows] == [(S.PROCESSING, 1)] * 2
    assert all(owner for _, _, owner in rows)  # still leased: the lease expiry brings them back
    assert any("lease" in r.getMessage() and r.name == "messages.tasks" for r in caplog.records)
    Message.objects.update(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    monkeypatch.undo()
    totals = tasks.drain(max_seconds=5)
    assert set(Message.objects.values_list("state", flat=True)) == {S.PROCESSED}


def test_drain_registers_while_it_runs_for_its_clusters_due_check(terminal, monkeypatch, enqueued):
    from multiprocessing import Array

    seen = []
    real_claim = services.message_claim

    def claim(**kwargs):
        seen.append(drain_slots.drains_running({os.getpid()}))
        return real_claim(**kwargs)

    monkeypatch.setattr(services, "message_claim", claim)
    monkeypatch.setattr(drain_slots, "slots", Array("l", 3))
    drain_slots.slots[0] = 2**22 + 12345  # left by a killed worker (no such process): reused
    drain_slots.slots[1] = 1  # a live process (init) that is not one of our workers
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a")])
    assert not drain_slots.drains_running({os.getpid()})
    tasks.drain()
    assert seen and all(seen)
    assert not drain_slots.drains_running({os.getpid()}) and drain_slots.slots[:] == [0, 1, 0]
