"""Two real django-q2 clusters (as on two machines) draining one PostgreSQL queue through Redis."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest

from messages import services
from messages.models import EntityCounter, Message, MessageEvent, MessageState
from tests.factories import TerminalFactory
from tests.messages.test_services import env
from tests.processes import ROOT, group_alive, kill_group, postgres_url, start_qcluster, wait_until

S = MessageState
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster_env(tmp_path):
    url = postgres_url()
    name = f"test-{uuid.uuid4().hex[:8]}"  # a queue of our own on the shared Redis
    return {
        **os.environ,
        "DATABASE_URL": url,
        "Q_BROKER": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "Q_CLUSTER_NAME": name,
        "SYNC_WORKERS": "2",
        "SYNC_LEASE_SECONDS": "3",
        "SYNC_CLAIM_BATCH": "20",
        "Q_TIMEOUT": "20",
        "Q_RETRY": "30",
        "SYNC_DRAIN_SECONDS": "5",
        "SYNC_VAR_DIR": str(tmp_path),
    }


def wake(cluster_env, drains=4):
    subprocess.run(
        [sys.executable, "manage.py", "sync_wake", "--drains", str(drains)], cwd=ROOT, env=cluster_env, check=True
    )


def ingest(n_terminals=20, per_terminal=100):
    for t in range(n_terminals):
        terminal = TerminalFactory(code=f"C{t:03d}")
        batch = [env(f"{t}-{i}", f"SKU-{i % 40}", seq=i) for i in range(per_terminal)]
        services.message_ingest_batch(terminal=terminal, envelopes=batch)
    return n_terminals * per_terminal


def assert_exactly_once(total, n_terminals=20):
    assert Message.objects.filter(state=S.PROCESSED).count() == total
    done = Counter(MessageEvent.objects.filter(to_state=S.PROCESSED).values_list("message_id", flat=True))
    assert len(done) == total and set(done.values()) == {1}
    assert list(EntityCounter.objects.values_list("live_count", flat=True)) == [40] * n_terminals


def test_two_clusters_share_the_queue_without_double_processing(cluster_env, tmp_path):
    total = ingest()
    logs = [open(tmp_path / f"cluster{i}.log", "w") for i in range(2)]
    clusters = [start_qcluster(cluster_env, log) for log in logs]
    try:
        wake(cluster_env)
        assert wait_until(lambda: not Message.objects.exclude(state=S.PROCESSED).exists(), 120), (
            tmp_path / "cluster0.log"
        ).read_text()[-3000:]
        assert_exactly_once(total)
        owners = {
            actor.rsplit(":", 1)[0]
            for actor in MessageEvent.objects.filter(to_state=S.PROCESSED).values_list("actor", flat=True)
        }
        assert len(owners) >= 2, owners  # more than one worker process did the work
        # SIGTERM stops a cluster cleanly within the task timeout, and leaves no process behind
        clusters[0].send_signal(signal.SIGTERM)
        clusters[0].wait(timeout=int(cluster_env["Q_TIMEOUT"]) + 10)
        assert clusters[0].returncode is not None
        assert wait_until(lambda: not group_alive(clusters[0].pid), 10)
    finally:
        for c in clusters:
            kill_group(c)


def test_a_killed_cluster_loses_nothing(cluster_env, tmp_path):
    total = ingest()
    # slow every apply down a little so the kill lands while leases are held
    slow_env = {**cluster_env, "SYNC_HANDLER_MODULES": "tests.messages.slow_handlers"}
    victim = start_qcluster(slow_env, open(tmp_path / "victim.log", "w"))
    survivor = None
    try:
        wake(cluster_env)
        assert wait_until(lambda: Message.objects.filter(state=S.PROCESSING).exists(), 60)
        time.sleep(0.5)
        os.killpg(victim.pid, signal.SIGKILL)  # the whole cluster, mid-batch
        victim.wait()
        stranded = Message.objects.filter(state=S.PROCESSING).count()
        assert stranded > 0
        survivor = start_qcluster(cluster_env, open(tmp_path / "survivor.log", "w"))
        time.sleep(int(cluster_env["SYNC_LEASE_SECONDS"]) + 1)
        wake(cluster_env)
        assert wait_until(lambda: not Message.objects.exclude(state=S.PROCESSED).exists(), 120)
        assert_exactly_once(total)
        recovered = MessageEvent.objects.filter(from_state=S.PROCESSING, to_state=S.PROCESSING).count()
        assert recovered >= 1  # the stranded leases were re-claimed, with the attempt recorded
    finally:
        for c in (victim, survivor):
            if c is not None:
                kill_group(c)
