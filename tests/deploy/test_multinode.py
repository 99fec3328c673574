"""The multi-node shape on one machine: 2 gunicorn web nodes + 2 qcluster worker nodes, PostgreSQL + Redis.

Simulated terminals (terminals/simulator.py, real SOAP through zeep) are spread over both web
nodes; both worker clusters drain the one queue. Every accepted message must end Processed
exactly once, and the counters must equal a recount of the central store.
"""

import os
import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests
from django.db.models import Count

from messages.models import CentralEntity, EntityCounter, Message, MessageEvent, MessageState
from terminals.simulator import SimConfig, ensure_terminals, run_simulation
from tests.processes import free_port, postgres_url, start_gunicorn, start_qcluster, stop, wait_until

S = MessageState
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def node_env(tmp_path):
    url = postgres_url()  # pytest-django's test database, which this test's rows are in
    broker = os.environ.get("Q_BROKER", "")
    return {
        **os.environ,
        "DATABASE_URL": url,
        "Q_BROKER": os.environ.get("TEST_REDIS_URL")
        or (broker if broker.startswith("redis") else "")
        or "redis://127.0.0.1:6379/15",
        "Q_CLUSTER_NAME": f"multinode-{uuid.uuid4().hex[:8]}",  # a queue of our own on the shared Redis
        "SYNC_WORKERS": "2",
        "SYNC_CLAIM_BATCH": "10",
        "SYNC_LEASE_SECONDS": "10",
        "SYNC_DRAIN_SECONDS": "5",
        "Q_TIMEOUT": "20",
        "Q_RETRY": "30",
        "SYNC_VAR_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "4",
    }


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc): which worker processes belong to which cluster."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, pp in parents.items() if pp in frontier} - found
        found |= children
        frontier = children
    return found


def test_two_web_and_two_worker_nodes_process_every_message_exactly_once(node_env, tmp_path):
    credentials = ensure_terminals(count=4, prefix="MN", keys_file=tmp_path / "keys.json")
    ports = [free_port(), free_port()]
    procs, logs = [], []
    try:
        for i, port in enumerate(ports):
            log = open(tmp_path / f"web{i}.log", "w")
            logs.append(log)
            procs.append(start_gunicorn(node_env, log, port))
        clusters = []
        for i in range(2):
            log = open(tmp_path / f"worker{i}.log", "w")
            logs.append(log)
            clusters.append(start_qcluster(node_env, log))
        procs += clusters

        def up(port):
            try:
                return requests.get(f"http://127.0.0.1:{port}/soap/terminal/v1/?wsdl", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        assert wait_until(lambda: all(up(p) for p in ports), 60), (tmp_path / "web0.log").read_text()[-2000:]

        # Half of the terminals talk to each web node, at the same time.
        codes = sorted(credentials)
        summaries = {}

        def drive(i, port):
            config = SimConfig(
                url=f"http://127.0.0.1:{port}/soap/terminal/v1/",
                terminals=2,
                rate=25,
                duration=6,
                bad_fraction=0.0,  # every accepted message must end Processed
                duplicate_fraction=0.2,  # re-sent batches come back Duplicate, never stored twice
                seed=100 + i,
            )
            summaries[port] = run_simulation(config, {c: credentials[c] for c in codes[i::2]})

        threads = [threading.Thread(target=drive, args=(i, p)) for i, p in enumerate(ports)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        accepted = sum(s.accepted for s in summaries.values())
        for port, summary in summaries.items():
            assert summary.faults == {} and summary.errors == {}, (port, summary.render())
            assert summary.accepted > 0, f"web node {port} took no traffic"
        assert sum(s.duplicates for s in summaries.values()) > 0  # idempotency was exercised
        assert accepted > 300

        pending = Message.objects.exclude(state=S.PROCESSED)
        assert wait_until(lambda: not pending.exists(), 120), (
            f"{pending.count()} not processed\n" + (tmp_path / "worker0.log").read_text()[-3000:]
        )
        # Which cluster each worker process belongs to, while they are alive.
        members = [descendants(c.pid) for c in clusters]

        # Exactly once: every accepted message stored once and Processed by one transition.
        assert Message.objects.count() == accepted
        done = Counter(
            MessageEvent.objects.filter(from_state=S.PROCESSING, to_state=S.PROCESSED).values_list(
                "message_id", flat=True
            )
        )
        assert len(done) == accepted and set(done.values()) == {1}
        assert not MessageEvent.objects.filter(to_state__in=[S.FAILED, S.DEAD_LETTERED]).exists()

        # Counters = a recount of the central store, per (terminal, entity type).
        recount = {
            (r["terminal_code"], r["entity_type"]): r["n"]
            for r in CentralEntity.objects.filter(deleted=False)
            .values("terminal_code", "entity_type")
            .annotate(n=Count("pk"))
        }
        counters = {(c.terminal_code, c.entity_type): c.live_count for c in EntityCounter.objects.all() if c.live_count}
        assert counters == recount and sum(recount.values()) > 0

        # Both worker nodes did part of the work.
        pids = {
            int(actor.split(":")[1])
            for actor in MessageEvent.objects.filter(to_state=S.PROCESSED).values_list("actor", flat=True)
        }
        per_cluster = [len(pids & m) for m in members]
        assert all(per_cluster), (per_cluster, pids, members)
    finally:
        for proc in procs:
            stop(proc, timeout=int(node_env["Q_TIMEOUT"]) + 10)
        for log in logs:
            log.close()
