"""Scenario 4b: the (private) PostgreSQL crashes in the middle of a fast drain, then comes back.

The drains commit asynchronously (SYNC_WORKER_ASYNC_COMMIT, default on): a commit the worker
was told about can still sit in PostgreSQL's WAL buffers when the server dies, and an
immediate stop (SIGQUIT to every server process, no checkpoint, WAL recovery at the next start)
throws it away. What such a crash may undo is a claim or whole batches (central writes, states,
events and counters together); the messages are then due again, or their leases run out, and
they are applied again with the same result. The receipts the terminals were given are written
with synchronous commits and must all survive. Scenario 4 stops the database under a trickle of
load; this one crashes it while two clusters drain a backlog of thousands as fast as they can.
"""

from __future__ import annotations

import time

import pytest

from tests.chaos.checker import DATABASE_RECOVERY_BOUND, check, settle
from tests.chaos.conftest import LONG
from tests.chaos.harness import wait_until
from tests.chaos.load import LoadThread, SimConfig

pytestmark = pytest.mark.chaos


PROCESSED = "SELECT count(*) FROM queue_messages_messagestate WHERE state = 'Processed'"


def test_database_crash_mid_drain_loses_nothing_and_applies_nothing_twice(stack, record):
    terminals, rate, duration = (20, 60.0, 30) if LONG else (8, 60.0, 12)
    web = stack.start_web(workers=2)
    credentials = stack.create_terminals(terminals)
    # The backlog first, with no cluster running: the crash must find the drains at full speed.
    load = LoadThread(
        SimConfig(url=stack.soap_url(web), rate=rate, duration=duration, bad_fraction=0.02, seed=43),
        credentials,
        patience=120,
    )
    load.start()
    load.join()
    assert load.error is None, load.error
    backlog = stack.backlog()
    assert backlog > 1000, backlog
    clusters = [stack.start_cluster() for _ in range(2)]
    stack.wake()
    assert wait_until(lambda: stack.scalar(PROCESSED) >= backlog // 5, 60, 0.05), "the drain never got going"
    processed_before = stack.scalar(PROCESSED)
    crashed_at, up_at = stack.pg.outage(3, "immediate")  # a crash: no checkpoint, unflushed WAL lost
    recovered = settle(stack, DATABASE_RECOVERY_BOUND)
    drained_s = time.monotonic() - up_at
    report = check(stack, load.ledger, "4b-db-crash-mid-drain", settle_timeout=10, summary=load.summary)
    report.extra.update(
        backlog_at_start=backlog,
        processed_before_crash=processed_before,
        down_s=round(up_at - crashed_at, 1),
        drained_after_s=round(drained_s, 1),
        clusters_alive=sum(c.alive() for c in clusters),
        web_alive=web.alive(),
    )
    record(report)
    assert report.ok, report.render() + "\n" + clusters[0].log_tail()
    assert recovered, f"backlog {stack.backlog()} not drained {DATABASE_RECOVERY_BOUND}s after the database came back"
    assert processed_before < backlog  # the crash did hit a drain in progress
    assert load.ledger.gave_up == 0
    assert all(c.alive() for c in clusters) and web.alive()
