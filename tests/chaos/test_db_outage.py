"""Scenario 4: the (private) PostgreSQL stops for 30-60 s under load, then comes back.

Meanwhile terminals get ``Server.Unavailable`` and keep re-sending; the workers must recover
by themselves (no manual wake-up) within a bounded time; nothing is lost or applied twice.
"""

from __future__ import annotations

import time

import pytest

from tests.chaos.checker import DATABASE_RECOVERY_BOUND, check, settle
from tests.chaos.conftest import LONG
from tests.chaos.load import LoadThread, SimConfig

pytestmark = pytest.mark.chaos


def test_database_outage_loses_nothing_and_workers_recover(stack, record):
    outage = 60 if LONG else 30
    web = stack.start_web(workers=2)
    url = stack.soap_url(web)
    credentials = stack.create_terminals(4)
    clusters = [stack.start_cluster() for _ in range(2)]
    load = LoadThread(
        SimConfig(url=url, rate=20, duration=outage + 25, bad_fraction=0.03, seed=41), credentials, patience=300
    )
    load.start()
    time.sleep(8)
    down_at, up_at = stack.pg.outage(outage, "immediate" if LONG else "fast")
    db_up_at = stack.scalar("SELECT clock_timestamp()")
    load.join()
    assert load.error is None, load.error
    recovered = settle(stack, DATABASE_RECOVERY_BOUND)
    drained_s = time.monotonic() - up_at
    # the workers' own recovery: first message applied after the database came back
    first_applied_s = stack.scalar(
        "SELECT extract(epoch FROM min(at) - %s) FROM queue_messages_messageevent"
        " WHERE to_state = 'Processed' AND at > %s",
        (db_up_at, db_up_at),
    )
    report = check(stack, load.ledger, "4-db-outage", settle_timeout=10, summary=load.summary)
    faults = dict(load.summary.faults)
    report.extra.update(
        outage_s=round(up_at - down_at),
        unavailable_faults=faults.get("Server.Unavailable", 0),
        faults=faults,
        errors=dict(load.summary.errors),
        first_applied_after_s=round(float(first_applied_s or -1), 1),
        drained_after_s=round(drained_s, 1),
        clusters_alive=sum(c.alive() for c in clusters),
        web_alive=web.alive(),
    )
    record(report)
    assert report.ok, report.render() + "\n" + clusters[0].log_tail()
    assert recovered, f"backlog {stack.backlog()} not drained {DATABASE_RECOVERY_BOUND}s after the database came back"
    assert faults.get("Server.Unavailable", 0) > 0  # the terminals were told, and retried
    assert set(faults) <= {"Server.Unavailable"}, faults  # never an internal error, never a client fault
    assert load.ledger.gave_up == 0
    assert first_applied_s is not None and float(first_applied_s) < DATABASE_RECOVERY_BOUND
    assert all(c.alive() for c in clusters) and web.alive()
