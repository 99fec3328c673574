"""django-q2 tasks: thin wrappers that drain the queue and sweep for due work.

The message table, not django-q2's task bookkeeping, is the source of truth: a drain task
only claims whatever is due, so losing, duplicating or redelivering a drain task is
harmless. Each worker cluster looks at the due index itself (messages/cluster.py), and the
sweep schedule wakes drains too, so due work is never left waiting for a lost wake-up.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError
from django_q.brokers import get_broker
from django_q.tasks import async_task

from messages import selectors, services
from terminals import services as terminal_services

log = logging.getLogger(__name__)

DRAIN_TASK = "messages.tasks.drain"
LEASE_WATCH_NAP = 0.5  # seconds between looks for due work while a lease is about to run out


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


_broker = None


def _drain_broker():
    """This process's broker, made once.

    Without one, django-q2 builds a broker per async_task call: for Redis a new client, pool
    and TCP connection on every ingest call that wakes the workers. redis-py's pool is
    thread-safe, notices a fork (django-q2's workers) and reconnects after a Redis restart.
    """
    global _broker
    if _broker is None:
        _broker = get_broker()
    return _broker


def enqueue_drain(count: int = 1) -> None:
    broker = _drain_broker()
    for _ in range(count):
        async_task(DRAIN_TASK, group="drain", q_options={"task_name": "drain", "broker": broker})


# --- which drains run in this worker cluster -------------------------------------------------
# The pids of the cluster's processes running a drain, in memory its processes share: made by the
# cluster's sentinel before it forks its workers (messages/cluster.py), None anywhere else. The
# cluster's own due check starts no drain while one runs.
_drain_slots = None


def drain_slots_install(array) -> None:
    """Called by the cluster's sentinel, before its workers fork: they inherit ``array``."""
    global _drain_slots
    _drain_slots = array


def drains_running(pids: set[int]) -> bool:
    """Whether one of the processes ``pids`` (the cluster's live workers) is running a drain."""
    slots = _drain_slots
    return slots is not None and any(pid in pids for pid in slots[:])


@contextmanager
def _drain_registered() -> Iterator[None]:
    slots, pid, slot = _drain_slots, os.getpid(), None
    if slots is not None:
        with slots.get_lock():
            # A free slot, or one a killed worker left behind (its pid is gone).
            slot = next((i for i, held in enumerate(slots) if held in (0, pid) or not _alive(held)), None)
            if slot is not None:
                slots[slot] = pid
    try:
        yield
    finally:
        if slot is not None:
            with slots.get_lock():
                slots[slot] = 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        pass
    return True


def drain(max_seconds: float | None = None) -> dict:
    """Claim and apply batches until nothing is due or the time budget is spent."""
    worker = worker_id()
    budget = settings.SYNC_DRAIN_SECONDS if max_seconds is None else max_seconds
    deadline = time.monotonic() + budget
    totals = {"claimed": 0, "processed": 0, "noop": 0, "failed": 0, "dead_lettered": 0, "released": 0}
    with _drain_registered(), services.engine_session():
        _drain_loop(worker, deadline, totals)
    if totals["claimed"]:
        log.info("drain %s finished: %s", worker, totals)
    return totals


def _drain_loop(worker: str, deadline: float, totals: dict) -> None:
    while True:
        if time.monotonic() >= deadline:
            # Work may remain: hand over to a fresh task instead of overrunning the timeout.
            enqueue_drain()
            break
        batch = services.message_claim(worker=worker, limit=settings.SYNC_CLAIM_BATCH)
        if not batch:
            # Nothing due. If a lease runs out within this drain's budget (its worker may have
            # died mid-batch), stay and take the message up then: otherwise it waits for the
            # next sweep, and a sweep task can itself be lost with a killed cluster (django-q2's
            # Redis broker does not redeliver). Short naps keep new work from waiting on us.
            expires_in = selectors.message_lease_expiry_seconds()
            if expires_in is None or expires_in < 0 or time.monotonic() + expires_in >= deadline:
                break
            time.sleep(min(expires_in + 0.05, LEASE_WATCH_NAP))
            continue
        totals["claimed"] += len(batch)
        try:
            result = services.message_process_claimed(messages=batch, worker=worker)
        except services.IllegalTransition as exc:
            # Our lease ran out and another worker re-claimed part of the batch: everything
            # this batch wrote was rolled back, and its messages are that worker's (or come
            # back when our lease ends). Carry on with the next batch.
            log.warning("drain %s lost its lease on a batch of %s: %s", worker, len(batch), exc)
            continue
        except DatabaseError as exc:
            # The batch failed and not even its release reached the database: it is down. The
            # messages left keep their lease and come back when it ends; a claim would fail too.
            log.warning(
                "drain %s stops: the database did not answer (%s); the messages it still holds come back when"
                " their lease ends (SYNC_LEASE_SECONDS)",
                worker,
                exc,
            )
            break
        for key in ("processed", "noop", "failed", "dead_lettered", "released"):
            totals[key] += getattr(result, key)
        if result.database_failed:
            # The batch met a failing database (the central store, say) and was released with backoff:
            # another claim now would only spend more messages' attempts. The next wake-up tries again.
            log.warning("drain %s stops: the database failed; its batch was released", worker)
            break


def sweep() -> int:
    """Scheduled every minute: wake enough drains for due work and expired leases.

    Then it forgets the WS-Security nonces that can no longer be replayed (a few minutes'
    worth, by an index): the table stays as small as the replay window.
    """
    due = selectors.message_due_count(limit=settings.SYNC_WORKERS * settings.SYNC_CLAIM_BATCH)
    if due:
        wanted = min(settings.SYNC_WORKERS, -(-due // settings.SYNC_CLAIM_BATCH))
        enqueue_drain(wanted)
        log.info("sweep found %s due message(s); woke %s drain(s)", due, wanted)
    terminal_services.terminal_nonces_purge()
    return due
