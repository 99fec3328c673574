"""Scenario 7: sustained load. Long version: 50 terminals for 5 minutes; CI: a short smoke.

Zero errors other than the deliberate bad payloads, p50/p99 SOAP and end-to-end latency
reported, the backlog back to zero, worker and web memory flat (last sample against the one
taken once the processes have warmed up).
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.chaos.checker import check
from tests.chaos.conftest import LONG
from tests.chaos.load import LoadThread, SimConfig

pytestmark = pytest.mark.chaos


class MemorySampler(threading.Thread):
    def __init__(self, web, clusters, every: float = 5.0):
        super().__init__(daemon=True)
        self.web, self.clusters, self.every = web, clusters, every
        self.samples: list[tuple[float, int, int]] = []  # (t, web KiB, workers KiB)
        self.stop_event = threading.Event()

    def run(self):
        started = time.monotonic()
        while not self.stop_event.wait(self.every):
            self.samples.append(
                (time.monotonic() - started, self.web.memory_kb(), sum(c.memory_kb() for c in self.clusters))
            )


def test_sustained_load(stack, record):
    terminals, rate, duration = (50, 4.0, 300) if LONG else (10, 5.0, 25)
    web = stack.start_web(workers=3)
    url = stack.soap_url(web)
    credentials = stack.create_terminals(terminals)
    clusters = [stack.start_cluster() for _ in range(2)]
    sampler = MemorySampler(web, clusters)
    sampler.start()
    load = LoadThread(
        SimConfig(url=url, rate=rate, duration=duration, bad_fraction=0.02, duplicate_fraction=0.02, seed=71),
        credentials,
    )
    load.start()
    load.join()
    assert load.error is None, load.error
    report = check(stack, load.ledger, "7-load" + ("" if LONG else "-smoke"), settle_timeout=300, summary=load.summary)
    sampler.stop_event.set()
    sampler.join()
    summary = load.summary
    warm = sampler.samples[len(sampler.samples) // 3]
    last = sampler.samples[-1]
    report.extra.update(
        terminals=terminals,
        duration_s=round(summary.duration),
        accepted_per_s=round(summary.accepted / summary.duration),
        calls=sum(summary.calls.values()),
        faults=dict(summary.faults),
        errors=dict(summary.errors),
        soap_all_p99_ms=round(summary.percentile(None, 99) * 1000),
        web_mb=f"{warm[1] // 1024}->{last[1] // 1024}",
        workers_mb=f"{warm[2] // 1024}->{last[2] // 1024}",
    )
    record(report)
    assert report.ok, report.render()
    assert not summary.faults and not summary.errors, (summary.faults, summary.errors)
    assert load.ledger.gave_up == 0
    # the only Rejected answers are the deliberately id-less messages
    assert summary.rejected == load.ledger.missing_id_answered > 0
    assert stack.backlog() == 0
    # flat memory: no more than a third above the warmed-up sample
    assert last[1] <= warm[1] * 1.34 and last[2] <= warm[2] * 1.34, sampler.samples
