"""Scenario 2: a message whose handler kills its own worker process.

It must reach DeadLettered after at most SYNC_MAX_ATTEMPTS claims (the attempt is counted
when the message is claimed, since the worker never lives to record a failure) and it must
never hold up the other messages submitted around it.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.chaos.checker import check, percentile
from tests.chaos.conftest import LONG
from tests.chaos.load import LoadThread, Sent, SimConfig, make_client

pytestmark = pytest.mark.chaos

MAX_ATTEMPTS = 3
HANDLERS = "tests.chaos.chaos_handlers"


def test_poison_message_is_dead_lettered_after_max_attempts_and_blocks_nothing(stack, record):
    stack.settings.update(SYNC_MAX_ATTEMPTS=str(MAX_ATTEMPTS), SYNC_HANDLER_MODULES=HANDLERS)
    web = stack.start_web(workers=2)
    url = stack.soap_url(web)
    credentials = stack.create_terminals(3)
    poison_terminal, poison_key = stack.create_terminals(1, prefix="PZ").popitem()
    for _ in range(2):
        stack.start_cluster()
    duration = 120 if LONG else 30
    load = LoadThread(SimConfig(url=url, rate=30, duration=duration, bad_fraction=0.03, seed=21), credentials)
    load.start()
    client = make_client(url, poison_terminal, poison_key)
    poison_ids = []
    n_poison = 12 if LONG else 4
    for i in range(n_poison):
        time.sleep(duration / (2 * n_poison))
        mid = f"poison-{i}-{uuid.uuid4().hex[:8]}"
        batch = [
            {
                "MessageId": mid,
                "MessageType": "poison.apply",
                "EntityKey": f"P{i}",
                "Sequence": 1,
                "CreatedAt": datetime.now(UTC),
                "Payload": json.dumps({"n": i}),
            },
            # an innocent neighbour in the same batch: claimed (and killed) with the poison
            {
                "MessageId": f"{mid}-neighbour",
                "MessageType": "stock.upsert",
                "EntityKey": f"N{i}",
                "Sequence": 1,
                "CreatedAt": datetime.now(UTC),
                "Payload": json.dumps({"qty": i}),
            },
        ]
        answers = client.service.SubmitMessages(messages={"SyncMessage": batch})
        assert [a.Status for a in answers] == ["Accepted", "Accepted"]
        with load.ledger.lock:
            load.ledger.messages[(poison_terminal, mid)] = Sent(poison_terminal, mid, "poison", ["Accepted"])
            load.ledger.messages[(poison_terminal, f"{mid}-neighbour")] = Sent(
                poison_terminal, f"{mid}-neighbour", "good", ["Accepted"]
            )
        poison_ids.append(mid)
    load.join()
    assert load.error is None, load.error
    # a poison claimed last may wait for the sweep (the drain that claimed it died with it)
    report = check(stack, load.ledger, "2-poison", settle_timeout=200, summary=load.summary)
    rows = stack.query(
        "SELECT m.message_id, s.state, s.attempts, d.reason,"
        " (SELECT count(*) FROM queue_messages_messageevent e WHERE e.message_id = m.id AND e.to_state = 'Processing')"
        " FROM queue_messages_message m LEFT JOIN queue_messages_messagestate s ON s.id = m.id"
        " LEFT JOIN queue_messages_deadletter d ON d.message_id = m.id"
        " WHERE m.message_type = 'poison.apply'"
    )
    claims = [r[4] for r in rows]
    worker_deaths = sum(p.log_tail(10**7).count("reincarnated worker") for p in stack.procs if p.name == "cluster")
    # everyone else's latency, excluding the poison's own batch neighbours
    others = [
        float(v) * 1000
        for (v,) in stack.query(
            "SELECT extract(epoch FROM s.processed_at - m.received_at) FROM queue_messages_message m"
            " JOIN queue_messages_messagestate s ON s.id = m.id"
            " JOIN terminals_terminal t ON t.id = m.terminal_id WHERE s.state = 'Processed' AND t.code <> %s",
            (poison_terminal,),
        )
    ]
    report.extra.update(
        poison=len(rows),
        poison_claims=claims,
        worker_deaths=worker_deaths,
        others_p99_ms=round(percentile(others, 99)),
    )
    record(report)
    assert report.ok, report.render()
    assert len(rows) == n_poison
    for message_id, state, attempts, reason, n_claims in rows:
        assert state == "DeadLettered", (message_id, state)
        assert attempts <= MAX_ATTEMPTS and n_claims <= MAX_ATTEMPTS, (message_id, attempts, n_claims)
        assert "lease expired" in reason, reason
    assert worker_deaths >= n_poison  # each poison really killed its worker (at least once)
    # the others flowed: nothing of theirs waited anywhere near a poison's whole dead-lettering
    assert percentile(others, 99) < 30_000, report.render()
