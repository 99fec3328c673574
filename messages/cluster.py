"""The worker cluster: django-q2's, plus a look at the due index of its own.

django-q2 runs only what its broker delivers. A drain or sweep task that a cluster took off the
broker and then died with (SIGKILL, out of memory, a lost machine) is gone with the Redis broker,
and due messages waited for the next scheduled sweep, itself a task through that broker. Like
Oban's stager and River's producers, which poll the jobs table from every node, each cluster here
probes the due index every SYNC_DUE_CHECK_SECONDS and, when work is due and none of its own drains
runs, hands one drain straight to its own workers (their local task queue). Finding due work then
needs no broker and no task from anyone; the broker's wake-ups (ingest, the sweep schedule) stay
the fast path.

``manage.py sync_cluster`` (the systemd worker unit, ``manage.py serve``) is ``qcluster`` with
this sentinel.
"""

from __future__ import annotations

import logging
import queue
import threading

from django.conf import settings
from django.db import connections
from django_q import cluster as q_cluster
from django_q.conf import Conf
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from messages import drain_slots
from messages.selectors import message_due_exists
from messages.services.wakeup import DRAIN_TASK

log = logging.getLogger(__name__)

DUE_CHECK_TASK_NAME = "drain (due check)"


class _OwnWorkers:
    """Takes a broker's place: puts a task on this cluster's own task queue, where its workers take it."""

    list_key = "own workers"

    def __init__(self, task_queue):
        self.task_queue = task_queue

    def enqueue(self, pack) -> str:
        task = SignedPackage.loads(pack)
        task["cluster"] = Conf.CLUSTER_NAME  # as django-q2's pusher marks a task it takes off the broker
        self.task_queue.put_nowait(task)  # never waits: queue.Full if the queue filled meanwhile
        return task["id"]


class DueCheckingSentinel(q_cluster.Sentinel):
    """django-q2's sentinel (it spawns and guards the workers), plus the due check in a thread of its own.

    A thread, not a process: it only reads the clock, one index probe and the pool, and a thread
    dies with the sentinel, which nothing would restart a process of ours for. The sentinel forks
    workers while the thread may be mid-query: a child never touches the thread's connection, and
    psycopg does not close a connection from a process that did not open it.
    """

    def spawn_cluster(self):
        # Before the workers fork: they inherit the slots their drains register in (drain_slots).
        drain_slots.slots_install(q_cluster.get_mp_context().Array("l", 2 * self.pool_size + 2))
        super().spawn_cluster()

    def guard(self):
        if settings.SYNC_DUE_CHECK_SECONDS > 0:
            threading.Thread(target=self._due_check_loop, name="due-check", daemon=True).start()
        super().guard()

    def _due_check_loop(self) -> None:
        interval = settings.SYNC_DUE_CHECK_SECONDS
        failing = False
        while not self.stop_event.is_set():
            try:
                self.due_check()
            except Exception as exc:
                # The database may be down: say so once, and look again at the next interval.
                if not failing:
                    log.warning("due check failed, trying again every %ss: %s", interval, exc)
                failing = True
                connections.close_all()  # this thread's: a new connection next time
            else:
                if failing:
                    log.info("due check works again")
                failing = False
            self.stop_event.wait(interval)

    def due_check(self) -> bool:
        """Hand one drain to this cluster's workers if work is due and none of its drains runs.

        At most one index probe, and none while a drain of this cluster runs (it finds the work
        itself) or a task waits for a free worker (a drain there would only queue behind it).
        """
        workers = {p.pid for p in list(self.pool) if p.pid is not None}
        if drain_slots.drains_running(workers) or not self.task_queue.empty():
            return False
        if not message_due_exists() or self.stop_event.is_set():
            return False
        try:
            async_task(
                DRAIN_TASK,
                group="drain",
                q_options={"task_name": DUE_CHECK_TASK_NAME, "broker": _OwnWorkers(self.task_queue)},
            )
        except queue.Full:  # the broker's tasks filled the queue since: they keep the workers busy
            return False
        log.info("due check found due work; handed a drain to this cluster's workers")
        return True
