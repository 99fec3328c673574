"""Real concurrency against real PostgreSQL: SKIP LOCKED claims, racing operators and workers."""

import threading
from collections import Counter

import pytest
from django.db import connection

from messages import services
from messages.models import CentralEntity, EntityCounter, Message, MessageEvent, MessageState
from tests.messages.helpers import env

S = MessageState
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_threads(n, target):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_concurrent_claimers_never_get_the_same_message(terminal):
    services.message_ingest_batch(terminal=terminal, envelopes=[env(f"m{i}", f"K{i % 150}", seq=i) for i in range(600)])
    claimed: list[list[int]] = [[] for _ in range(6)]
    barrier = threading.Barrier(6)

    def claimer(i):
        barrier.wait()
        while batch := services.message_claim(worker=f"w{i}", limit=25):
            claimed[i].extend(m.pk for m in batch)
            services.message_process_batch(messages=batch, worker=f"w{i}")

    run_threads(6, claimer)
    every = [pk for c in claimed for pk in c]
    assert len(every) == 600 and len(set(every)) == 600
    assert sum(1 for c in claimed if c) >= 2  # the work really was shared
    assert set(Message.objects.values_list("state", flat=True)) == {S.PROCESSED}
    # one claim and one completion per message, never two owners
    claims = Counter(MessageEvent.objects.filter(to_state=S.PROCESSING).values_list("message_id", flat=True))
    assert set(claims.values()) == {1}
    # 150 entities, the highest sequence of each wins whatever order the workers applied them in
    assert CentralEntity.objects.count() == 150
    assert EntityCounter.objects.get(terminal_code=terminal.code).live_count == 150
    for row in CentralEntity.objects.all():
        assert row.last_sequence == max(i for i in range(600) if f"K{i % 150}" == row.entity_key)


def test_fifty_concurrent_submissions_of_one_message_store_one_row(terminal):
    answers = []
    barrier = threading.Barrier(50)

    def submit(i):
        barrier.wait()
        answers.append(services.message_ingest_batch(terminal=terminal, envelopes=[env("same-id")])[0].status)

    run_threads(50, submit)
    assert Message.objects.filter(message_id="same-id").count() == 1
    assert Counter(answers) == {"Accepted": 1, "Duplicate": 49}


def test_double_clicked_retry_changes_state_once(terminal):
    from tests.factories import MessageFactory

    m = MessageFactory(terminal=terminal, state=S.DEAD_LETTERED, attempts=5)
    results = []
    barrier = threading.Barrier(8)

    def click(i):
        barrier.wait()
        results.append(services.message_retry(message_ids=[m.pk], actor=f"user:u{i}"))

    run_threads(8, click)
    assert sorted(results) == [0] * 7 + [1]
    assert MessageEvent.objects.filter(message=m, to_state=S.RECEIVED).count() == 1


def test_operator_retry_racing_a_worker_never_yields_two_owners(terminal):
    services.message_ingest_batch(terminal=terminal, envelopes=[env(f"r{i}", f"K{i}") for i in range(200)])
    # make them all Failed and due, then let workers claim while an operator retries them all
    batch = services.message_claim(worker="setup", limit=200)
    for m in batch:
        services.message_transition(
            message_ids=[m.pk],
            from_state=S.PROCESSING,
            to_state=S.FAILED,
            actor="setup",
            fields={"lease_owner": "", "lease_expires_at": None, "next_attempt_at": m.received_at},
        )
    ids = [m.pk for m in batch]

    def actor(i):
        if i == 0:
            services.message_retry(message_ids=ids, actor="user:op")
        else:
            while b := services.message_claim(worker=f"w{i}", limit=20):
                services.message_process_batch(messages=b, worker=f"w{i}")

    run_threads(3, actor)
    while b := services.message_claim(worker="tail", limit=50):
        services.message_process_batch(messages=b, worker="tail")
    assert set(Message.objects.values_list("state", flat=True)) == {S.PROCESSED}
    # each message was completed exactly once, by the worker that held its lease
    done = Counter(MessageEvent.objects.filter(to_state=S.PROCESSED).values_list("message_id", flat=True))
    assert len(done) == 200 and set(done.values()) == {1}
    assert EntityCounter.objects.get(terminal_code=terminal.code).live_count == 200
