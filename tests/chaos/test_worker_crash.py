"""Scenarios 1 and 5: SIGKILL workers and whole clusters while a backlog drains (and with skewed clocks).

A backlog is loaded first, then the simulated terminals keep submitting while a killer
SIGKILLs, at random moments, either one worker process (preferably one that holds a lease
right now, i.e. mid-batch) or a whole ``qcluster`` process group, which is then restarted.
The checker then demands: nothing lost, nothing applied twice, nothing stuck, and no message
left ``Processing`` longer than the lease plus one sweep interval.

Scenario 5 runs the same with every worker's clock off by +5 and -5 minutes (libfaketime):
leases and backoff come from the database clock, so it must pass all the same.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.chaos.checker import check
from tests.chaos.conftest import LONG
from tests.chaos.harness import BASE_SETTINGS, ROOT, Stack
from tests.chaos.load import LoadThread, SimConfig, run_load

pytestmark = pytest.mark.chaos

SLOW = "tests.messages.slow_handlers"  # 0.2 s per product batch: kills land mid-batch
# django-q2 checks schedules every 30 s and the sweep runs every minute: the longest a
# stranded message can wait for a wake-up once its lease has expired.
SWEEP_BOUND = 60 + 30
LIBFAKETIME = next(
    (
        p
        for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1")
        if Path(p).exists()
    ),
    None,
)
SHIM = Path(__file__).resolve().parent / "faketime_shim"


def kill_loop(stack: Stack, clusters: list, kills: int, seconds: float, rng: random.Random, cluster_env) -> dict:
    """SIGKILL ``kills`` times over ``seconds``: mostly one worker, sometimes a whole cluster."""
    done = {"worker": 0, "cluster": 0, "lease_holder": 0}
    gap = seconds / kills
    for _ in range(kills * 3):  # a victim can be gone already: try again, boundedly
        if done["worker"] + done["cluster"] >= kills:
            break
        time.sleep(rng.uniform(0.3 * gap, 1.7 * gap))
        i = rng.randrange(len(clusters))
        if rng.random() < 0.2:
            clusters[i].kill_group()
            clusters[i] = stack.start_cluster(**cluster_env(i))
            done["cluster"] += 1
            continue
        mine = set(stack.worker_pids(clusters[i]))
        holders = [p for p in stack.lease_owner_pids() if p in mine]
        victim = rng.choice(holders) if holders else (rng.choice(sorted(mine)) if mine else None)
        if victim is None:
            continue
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue
        done["worker"] += 1
        done["lease_holder"] += bool(holders)
    return done


def run_crash_scenario(stack: Stack, record, name: str, cluster_env) -> None:
    kills = 100 if LONG else 22
    seconds = 240 if LONG else 30
    rng = random.Random(1 if not LONG else None)
    web = stack.start_web(workers=2)
    credentials = stack.create_terminals(4)
    url = stack.soap_url(web)
    # a backlog first (no workers yet), then workers drain it under fire while the load goes on
    _, ledger = run_load(
        SimConfig(url=url, rate=100, duration=4, bad_fraction=0.03, duplicate_fraction=0.05, seed=11), credentials
    )
    backlog = stack.backlog()
    clusters = [stack.start_cluster(**cluster_env(i)) for i in range(2)]
    load = LoadThread(
        SimConfig(url=url, rate=20, duration=seconds + 6, bad_fraction=0.03, duplicate_fraction=0.05, seed=12),
        credentials,
        ledger=ledger,  # one ledger: the backlog's messages are held to their answers too
    )
    load.start()
    done = kill_loop(stack, clusters, kills, seconds, rng, cluster_env)
    load.join()
    assert load.error is None, load.error
    report = check(stack, load.ledger, name, settle_timeout=SWEEP_BOUND + 60, summary=load.summary)
    report.extra.update(kills=sum(v for k, v in done.items() if k != "lease_holder"), backlog=backlog, **done)
    record(report)
    logs = "\n".join(p.log_tail(1500) for p in stack.procs if p.name == "cluster")
    assert report.ok, report.render() + "\n" + logs
    assert done["worker"] + done["cluster"] >= (100 if LONG else 20)
    assert report.recovered_leases > 0, "no kill landed mid-batch: the scenario proved nothing"
    lease = int(BASE_SETTINGS["SYNC_LEASE_SECONDS"])
    assert report.max_processing_seconds <= lease + SWEEP_BOUND, report.render()


def test_worker_and_cluster_sigkill_lose_nothing(stack, record):
    run_crash_scenario(stack, record, "1-worker-crash", lambda i: {"SYNC_HANDLER_MODULES": SLOW})


@pytest.mark.skipif(LIBFAKETIME is None, reason="needs libfaketime (apt-get install faketime; .ci/run installs it)")
def test_worker_crash_with_clocks_five_minutes_off(stack, record):
    # one cluster 5 minutes ahead, the other 5 minutes behind the database
    def cluster_env(i):
        return {
            "SYNC_HANDLER_MODULES": SLOW,
            "LD_PRELOAD": LIBFAKETIME,
            "FAKETIME": "+5m" if i == 0 else "-5m",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            # test-only sitecustomize: works around libfaketime's clock_nanosleep bug (see there)
            "PYTHONPATH": f"{SHIM}:{ROOT}",
        }

    assert shutil.which("faketime")
    run_crash_scenario(stack, record, "5-clock-skew", cluster_env)
    # the skew was real: central rows carry the worker's own clock (timezone.now()), the
    # message's processed_at the database's; both directions must show up
    skews = [
        float(s)
        for (s,) in stack.query(
            "SELECT extract(epoch FROM ce.updated_at - s.processed_at) FROM queue_messages_centralentity ce"
            " JOIN queue_messages_messagestate s ON s.id = ce.last_message_pk"
        )
    ]
    assert any(s > 240 for s in skews) and any(s < -240 for s in skews), (min(skews), max(skews))
