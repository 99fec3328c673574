"""Real django-q2 clusters (as on two machines) draining one PostgreSQL queue through Redis, and the
due check each cluster runs itself (messages/cluster.py)."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from types import SimpleNamespace

import pytest
import redis
from django_q.models import Schedule, Task

from messages import drain_slots, services, tasks
from messages.cluster import DUE_CHECK_TASK_NAME, DueCheckingSentinel
from messages.models import EntityCounter, Message, MessageEvent, MessageState
from messages.services import ingest as ingest_service
from messages.services import wakeup
from tests.factories import TerminalFactory
from tests.messages.helpers import env
from tests.processes import ROOT, group_alive, kill_group, postgres_url, start_qcluster, stop, wait_until

S = MessageState


def real_clusters(test):
    """Real cluster processes on the PostgreSQL test database, which must see the test's rows (committed)."""
    return pytest.mark.postgres(pytest.mark.django_db(transaction=True)(test))


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


@pytest.fixture
def slow_cluster_env(cluster_env):
    """The same cluster with product.upsert slowed to 0.2 s a batch (tests/messages/slow_handlers.py)."""
    return {**cluster_env, "SYNC_HANDLER_MODULES": "tests.messages.slow_handlers"}


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


@real_clusters
def test_two_clusters_share_the_queue_without_double_processing(cluster_env, slow_cluster_env, tmp_path):
    total = ingest()
    # Each batch applies slowly (0.2 s, about 20 s of work in all): one drain cannot finish the
    # queue before the other workers take their tasks. Unslowed, a drain that started first once
    # took every message in under a second, and the test proved nothing about sharing.
    logs = [tmp_path / f"cluster{i}.log" for i in range(2)]
    clusters = [start_qcluster(slow_cluster_env, open(log, "w")) for log in logs]
    try:
        # Both clusters' workers are up before there is work (django-q2 logs "running" once they are).
        for log in logs:
            assert wait_until(lambda log=log: " running." in log.read_text(), 60), log.read_text()[-3000:]
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


@real_clusters
def test_a_killed_cluster_loses_nothing(cluster_env, slow_cluster_env, tmp_path):
    total = ingest()
    # slow every apply down a little so the kill lands while leases are held
    victim = start_qcluster(slow_cluster_env, open(tmp_path / "victim.log", "w"))
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


# --- the due check: due work found with no task through the broker (issue 15) ---------------------------


def ingest_unannounced(monkeypatch, n_terminals, per_terminal):
    """Due messages no task announces: no wake-up after the ingest, no sweep schedule either."""
    Schedule.objects.all().delete()
    monkeypatch.setattr(ingest_service, "wake_workers", lambda: None)
    return ingest(n_terminals, per_terminal)


def all_processed() -> bool:
    return not Message.objects.exclude(state=S.PROCESSED).exists()


@real_clusters
@pytest.mark.parametrize("broker", ["redis", "orm"])
def test_a_cluster_finds_due_work_that_no_task_announced(cluster_env, tmp_path, monkeypatch, broker):
    """No wake-up, no sweep, nothing on the broker: the cluster's own look at the due index drains the
    work. Before, such messages waited for a task that never came."""
    cluster_env = {**cluster_env, "SYNC_DUE_CHECK_SECONDS": "1"}
    if broker == "orm":
        cluster_env["Q_BROKER"] = "orm"
    total = ingest_unannounced(monkeypatch, 2, 50)
    log = tmp_path / "cluster.log"
    cluster = start_qcluster(cluster_env, open(log, "w"))
    try:
        assert wait_until(all_processed, 90), log.read_text()[-3000:]
        assert_exactly_once(total, n_terminals=2)
        # Its own drain did it. The cluster's monitor saves a task's result after the task returns, so
        # after the messages' last commit: wait for the row rather than race the monitor.
        assert wait_until(lambda: Task.objects.filter(name=DUE_CHECK_TASK_NAME, success=True).exists(), 30)
    finally:
        stop(cluster)


@real_clusters
def test_a_cluster_killed_holding_the_sweep_leaves_the_work_to_the_next_one(cluster_env, tmp_path, monkeypatch):
    """The chaos suite's case: a cluster took the sweep task off the Redis broker and was SIGKILLed with it.
    The task is gone (Redis does not redeliver) and no other task announces the due work; the next
    cluster finds it by itself. Before, it waited for the next sweep (forever here: no schedule)."""
    total = ingest_unannounced(monkeypatch, 2, 50)
    queue = redis.Redis.from_url(cluster_env["Q_BROKER"])
    key = f"django_q:{cluster_env['Q_CLUSTER_NAME']}:q"
    # Two long tasks for the victim's two workers, then the sweep: it takes all three off the broker
    # and holds the sweep until a worker is free. Its own due check is off, so it cannot run the work
    # itself before it is killed.
    victim_env = {**cluster_env, "SYNC_DUE_CHECK_SECONDS": "0", "Q_TIMEOUT": "300", "Q_RETRY": "400"}
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django_q.tasks import async_task\n"
         "async_task('time.sleep', 280); async_task('time.sleep', 280); async_task('messages.tasks.sweep')"],
        cwd=ROOT, env=victim_env, check=True, capture_output=True,
    )  # fmt: skip
    assert queue.llen(key) == 3
    victim = start_qcluster(victim_env, open(tmp_path / "victim.log", "w"))
    survivor = None
    try:
        assert wait_until(lambda: queue.llen(key) == 0, 60)
        time.sleep(1)
        assert not Message.objects.exclude(state=S.RECEIVED).exists()  # held, not run
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        log = tmp_path / "survivor.log"
        survivor = start_qcluster({**cluster_env, "SYNC_DUE_CHECK_SECONDS": "1"}, open(log, "w"))
        assert wait_until(all_processed, 90), log.read_text()[-3000:]
        assert_exactly_once(total, n_terminals=2)
        assert queue.llen(key) == 0  # nothing reached it through the broker
    finally:
        for c in (victim, survivor):
            if c is not None:
                kill_group(c)


@pytest.fixture
def sentinel(monkeypatch):
    """The due-checking sentinel of a cluster, built but not started (no processes): its pool is faked."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ctx = multiprocessing.get_context("fork")
    s = DueCheckingSentinel(ctx.Event(), ctx.Event(), uuid.uuid4(), start=False)
    for sig, handler in handlers.items():  # the sentinel's __init__ sets them for its own process
        signal.signal(sig, handler)
    monkeypatch.setattr(drain_slots, "slots", ctx.Array("l", 4))
    s.pool = [SimpleNamespace(pid=os.getpid())]  # this process stands in for its one worker
    yield s
    for q in (s.task_queue, s.result_queue):
        q.close()
        q.join_thread()


@pytest.mark.django_db
def test_the_due_check_hands_one_drain_to_its_own_workers_and_never_piles_them_up(
    sentinel, terminal, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(ingest_service, "wake_workers", lambda: None)
    with django_assert_num_queries(1):  # one probe of the due index
        assert sentinel.due_check() is False  # nothing due
    services.message_ingest_batch(terminal=terminal, envelopes=[env("a", "A")])
    with django_assert_num_queries(1):
        assert sentinel.due_check() is True
    assert wait_until(lambda: not sentinel.task_queue.empty(), 5, 0.05)
    with django_assert_num_queries(0):  # the drain waits for a worker: nothing more, not even a probe
        assert sentinel.due_check() is False
    task = sentinel.task_queue.get(timeout=5)
    assert (task["func"], task["name"], task["group"]) == (wakeup.DRAIN_TASK, DUE_CHECK_TASK_NAME, "drain")
    assert "ack_id" not in task  # not from a broker: nothing to acknowledge
    with (
        drain_slots.drain_registered(),
        django_assert_num_queries(0),
    ):  # a drain of this cluster runs: it finds the work
        assert sentinel.due_check() is False
    drain_slots.slots[0] = os.getpid() + 1  # a slot of a process that is not one of the workers does not count
    assert sentinel.due_check() is True
    task = sentinel.task_queue.get(timeout=5)
    assert tasks.drain()["processed"] == 1  # what the worker then runs
    with django_assert_num_queries(1):
        assert sentinel.due_check() is False
